//! A cheap structural pre-check of a JSON body before it is parsed.
//!
//! Client metadata is at most six levels deep (object → jwks → keys → key →
//! key_ops). Counting nesting with one pass over the bytes refuses hostile
//! shapes before serde builds any tree.

use crate::Error;

/// Deepest nesting any valid metadata document needs.
pub const MAX_DEPTH: usize = 6;
/// Largest number of elements accepted in any one array.
pub const MAX_ARRAY_LEN: usize = 256;

/// Refuses bodies nested deeper than [`MAX_DEPTH`] or with an array longer
/// than [`MAX_ARRAY_LEN`]; everything else is left to the JSON parser.
pub fn check_json_shape(bytes: &[u8]) -> Result<(), Error> {
    let mut in_string = false;
    let mut escaped = false;
    // For each open container: is it an array, and how many elements so far.
    let mut stack: Vec<(bool, usize)> = Vec::with_capacity(MAX_DEPTH);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                if stack.len() == MAX_DEPTH {
                    return Err(Error::invalid_metadata(format!(
                        "request body is nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                stack.push((b == b'[', 0));
            }
            b']' | b'}' => {
                stack.pop();
            }
            b',' => {
                if let Some((true, count)) = stack.last_mut() {
                    *count += 1;
                    if *count >= MAX_ARRAY_LEN {
                        return Err(Error::invalid_metadata(format!(
                            "request body holds an array of more than {MAX_ARRAY_LEN} elements"
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_metadata_shapes() {
        let body = br#"{"jwks":{"keys":[{"key_ops":["verify"],"n":"[[[[[[[[\"]]"}]},"a":[1,2]}"#;
        assert!(check_json_shape(body).is_ok());
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = format!("{}{}", "[".repeat(7), "]".repeat(7));
        assert!(check_json_shape(deep.as_bytes()).is_err());
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(6), "]".repeat(6));
        assert!(check_json_shape(deep.as_bytes()).is_err());
    }

    #[test]
    fn refuses_huge_arrays() {
        let items = vec!["1"; MAX_ARRAY_LEN + 1].join(",");
        assert!(check_json_shape(format!("{{\"a\":[{items}]}}").as_bytes()).is_err());
        // Commas in objects and strings do not count as array elements.
        let members: Vec<String> = (0..300).map(|i| format!("\"k{i}\":\",,\"")).collect();
        assert!(check_json_shape(format!("{{{}}}", members.join(",")).as_bytes()).is_ok());
    }
}
