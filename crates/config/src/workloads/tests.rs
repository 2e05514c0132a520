use crate::{Config, Error, RawConfig, WorkloadKeys};
use charter_jose::WorkloadKind;
use std::path::Path;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, Error> {
    RawConfig::from_toml_str(text, Path::new("test.toml"))?.validate()
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Err(Error::Invalid(p)) => p,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

const POINT: &str = r#""x": "AoT7VFTPJUk8DrnF7-RDkDFclzFultfbj70B9cPQgWU", "y": "6YLTKpTWX-m_twErfy869w-Vp7wTa-BqPd9XhFyJkTA""#;

fn bundle(usage: &str) -> String {
    format!(
        r#"{{"keys": [{{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "{usage}", {POINT}}}]}}"#
    )
}

fn with_sources(sources: &str) -> String {
    format!(
        "[policy]\nversion = \"v1\"\n[policy.profiles.default]\n[policy.profiles.workloads]\nrequire_workload_assertion = true\n\
         [workload_identity]\nenabled = true\n{sources}"
    )
}

/// The commented example in the repository validates, trust sources and
/// all, while the feature stays off.
#[test]
fn the_example_trust_sources_validate() {
    let c = parse(include_str!("../../../../charter.example.toml")).unwrap();
    let w = &c.workload_identity;
    assert!(!w.enabled);
    assert_eq!(w.max_token_lifetime, Duration::from_secs(86_400));
    let kinds: Vec<(WorkloadKind, &str)> = w
        .trust_sources
        .iter()
        .map(|s| (s.kind, s.trust.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (WorkloadKind::Spiffe, "prod.example"),
            (WorkloadKind::Kubernetes, "https://kubernetes.default.svc")
        ]
    );
    assert!(w.source(WorkloadKind::Spiffe, "prod.example").is_none());
}

#[test]
fn trust_sources_of_both_kinds() {
    let c = parse(&with_sources(&format!(
        "max_token_lifetime = \"1h\"\n\
         [[workload_identity.trust_sources]]\nkind = \"spiffe\"\ntrust_domain = \"prod.example\"\norganization = \"platform\"\nprofile = \"workloads\"\njwks = '{}'\n\
         [[workload_identity.trust_sources]]\nkind = \"kubernetes\"\nissuer = \"https://kubernetes.default.svc\"\norganization = \"platform\"\nprofile = \"workloads\"\naudience = \"charter\"\njwks_uri = \"https://k8s.example.com/openid/v1/jwks\"\n",
        bundle("jwt-svid")
    )))
    .unwrap();
    let w = &c.workload_identity;
    assert_eq!(w.max_token_lifetime, Duration::from_secs(3600));
    let spiffe = w.source(WorkloadKind::Spiffe, "prod.example").unwrap();
    assert_eq!(
        (spiffe.organization.as_str(), spiffe.profile.as_str()),
        ("platform", "workloads")
    );
    assert!(spiffe.audience.is_none(), "the issuer by default");
    let WorkloadKeys::Inline(keys) = &spiffe.keys else {
        panic!("inline keys expected");
    };
    assert_eq!(keys[0].kid(), Some("k1"));
    let k8s = w
        .source(WorkloadKind::Kubernetes, "https://kubernetes.default.svc")
        .unwrap();
    assert_eq!(k8s.audience.as_deref(), Some("charter"));
    assert!(matches!(&k8s.keys, WorkloadKeys::JwksUri(u) if u.ends_with("/jwks")));
    // Trust is per kind and exact.
    assert!(w.source(WorkloadKind::Kubernetes, "prod.example").is_none());
    assert!(w.source(WorkloadKind::Spiffe, "Prod.example").is_none());
}

#[test]
fn workload_problems_name_their_keys() {
    let jwt_svid = bundle("jwt-svid");
    let sig = bundle("sig");
    let p = problems(&with_sources(&format!(
        "max_token_lifetime = \"30d\"\n\
         [[workload_identity.trust_sources]]\nkind = \"oidc\"\norganization = \"o\"\nprofile = \"default\"\njwks = '{jwt_svid}'\n\
         [[workload_identity.trust_sources]]\nkind = \"spiffe\"\ntrust_domain = \"Prod.Example:443\"\norganization = \"o\"\nprofile = \"nope\"\njwks = '{sig}'\n\
         [[workload_identity.trust_sources]]\nkind = \"spiffe\"\norganization = \"o\"\nprofile = \"default\"\njwks = '{jwt_svid}'\njwks_uri = \"https://b.example/bundle\"\n\
         [[workload_identity.trust_sources]]\nkind = \"kubernetes\"\ntrust_domain = \"td\"\nprofile = \"default\"\njwks_uri = \"http://k8s.example/jwks\"\n\
         [[workload_identity.trust_sources]]\nkind = \"kubernetes\"\norganization = \"o\"\nprofile = \"default\"\n\
         [[workload_identity.trust_sources]]\norganization = \"o\"\nprofile = \"default\"\njwks = '{jwt_svid}'\n\
         [[workload_identity.trust_sources]]\nkind = \"spiffe\"\ntrust_domain = \"td\"\nissuer = \"https://x\"\norganization = \"o\"\nprofile = \"default\"\njwks = '{jwt_svid}'\n"
    )));
    for key in [
        "workload_identity.max_token_lifetime",
        "workload_identity.trust_sources[0].kind: \"oidc\"",
        "workload_identity.trust_sources[1].profile: \"nope\"",
        "workload_identity.trust_sources[1].trust_domain: \"Prod.Example:443\"",
        "workload_identity.trust_sources[1].jwks: keys[0] has no \"use\": \"jwt-svid\"",
        "workload_identity.trust_sources[2].trust_domain: missing",
        "workload_identity.trust_sources[2].jwks_uri: give the keys inline",
        "workload_identity.trust_sources[3].organization: missing",
        "workload_identity.trust_sources[3].trust_domain: not used",
        "workload_identity.trust_sources[3].jwks_uri: \"http://k8s.example/jwks\" cannot be fetched",
        "workload_identity.trust_sources[4].issuer: missing",
        "workload_identity.trust_sources[4].jwks: missing",
        "workload_identity.trust_sources[5].kind: missing",
        "workload_identity.trust_sources[6].issuer: not used",
    ] {
        assert!(
            p.iter().any(|m| m.starts_with(key)),
            "{key} not reported in {p:#?}"
        );
    }

    let source = format!(
        "[[workload_identity.trust_sources]]\nkind = \"spiffe\"\ntrust_domain = \"td\"\norganization = \"o\"\nprofile = \"default\"\njwks = '{jwt_svid}'\n"
    );
    let p = problems(&with_sources(&format!("{source}{source}")));
    assert!(
        p[0].starts_with(
            "workload_identity.trust_sources[1]: spiffe trust domain \"td\" is already configured"
        ),
        "{p:?}"
    );
    let p = problems("[workload_identity]\nenabled = true\n");
    assert!(
        p[0].starts_with("workload_identity.trust_sources: none configured"),
        "{p:?}"
    );
    // A profile that requires workload assertions while none is accepted.
    let p = problems(
        "[policy]\nversion = \"v1\"\n[policy.profiles.default]\n[policy.profiles.w]\nrequire_workload_assertion = true\n",
    );
    assert!(
        p[0].starts_with("policy.profiles.w.require_workload_assertion: true, but"),
        "{p:?}"
    );
}
