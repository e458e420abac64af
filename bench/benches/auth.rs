//! JWT verification at the handshake: HS256 with the dev secret, a valid
//! token (accepted) and an expired one (refused with `TokenExpired`).
#![allow(missing_docs)]

use chat_protocol::v1::ErrorCode;
use chat_server::auth::{Claims, Verifier, mint_claims, mint_hs256};
use chat_server::config::{AuthConfig, PUBLIC_DEV_SECRET};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

fn auth(c: &mut Criterion) {
    let auth = AuthConfig { hs256_secret: PUBLIC_DEV_SECRET.into(), ..AuthConfig::default() };
    let verifier = Verifier::new(&auth).expect("HS256 auth config");
    let valid =
        mint_hs256(PUBLIC_DEV_SECRET, "alice.smith@firm-1", "Alice Smith", "advocate", Duration::from_secs(3600));
    assert!(verifier.verify_static(&valid).is_ok());
    let expired = mint_claims(
        PUBLIC_DEV_SECRET,
        &Claims {
            sub: "alice.smith@firm-1".into(),
            name: "Alice Smith".into(),
            role: "advocate".into(),
            exp: 1_000,
            iat: 0,
            iss: None,
            aud: None,
        },
    );
    assert_eq!(verifier.verify_static(&expired).unwrap_err().code, ErrorCode::TokenExpired);

    let mut g = c.benchmark_group("auth");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_hs256_valid", |b| b.iter(|| verifier.verify_static(black_box(&valid))));
    g.bench_function("verify_hs256_expired", |b| b.iter(|| verifier.verify_static(black_box(&expired))));
    g.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
