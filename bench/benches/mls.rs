//! MLS as the SDKs run it (openmls, the E2E ciphersuite
//! X25519/AES-128-GCM/Ed25519): encrypting one 200-byte message, decrypting
//! it at another member, and a commit (a member renews its keys: making the
//! commit and merging it, then another member applying it) in groups of 2, 8
//! and 100 devices. Crypto only: the SDK's device file write per operation
//! is not counted here.
#![allow(missing_docs)]

use chat_client::mls::{CIPHERSUITE, identity};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls::treesync::LeafNodeParameters;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use std::time::Duration;

struct Member {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
}

fn member(i: usize) -> Member {
    let provider = OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).unwrap();
    signer.store(provider.storage()).unwrap();
    let credential = CredentialWithKey {
        credential: BasicCredential::new(identity(&format!("user{i}"), "device")).into(),
        signature_key: signer.to_public_vec().into(),
    };
    Member { provider, signer, credential }
}

fn key_package(m: &Member) -> KeyPackage {
    let bundle = KeyPackage::builder().build(CIPHERSUITE, &m.provider, &m.signer, m.credential.clone()).unwrap();
    bundle.key_package().clone()
}

/// A group of `n` devices: the creator's and the second member's groups
/// (the other members hold KeyPackages only: they need not be running).
fn group(n: usize) -> (Member, MlsGroup, Member, MlsGroup) {
    let a = member(0);
    let b = member(1);
    let mut ga = MlsGroup::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .build(&a.provider, &a.signer, a.credential.clone())
        .unwrap();
    let mut kps = vec![key_package(&b)];
    kps.extend((2..n).map(|i| key_package(&member(i))));
    let (_, welcome, _) = ga.add_members(&a.provider, &a.signer, &kps).unwrap();
    ga.merge_pending_commit(&a.provider).unwrap();
    let welcome = MlsMessageIn::tls_deserialize_exact(welcome.tls_serialize_detached().unwrap()).unwrap();
    let MlsMessageBodyIn::Welcome(welcome) = welcome.extract() else { panic!("no welcome") };
    let config = MlsGroupJoinConfig::builder().use_ratchet_tree_extension(true).build();
    let gb =
        StagedWelcome::new_from_welcome(&b.provider, &config, welcome, None).unwrap().into_group(&b.provider).unwrap();
    (a, ga, b, gb)
}

fn apply(m: &Member, g: &mut MlsGroup, bytes: &[u8]) -> ProcessedMessageContent {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes).unwrap();
    g.process_message(&m.provider, msg.try_into_protocol_message().unwrap()).unwrap().into_content()
}

fn mls(c: &mut Criterion) {
    let text = vec![b'x'; 200];
    let mut g = c.benchmark_group("mls");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    g.throughput(Throughput::Elements(1));
    for n in [2, 8, 100] {
        // A fresh group for each bench: the others leave theirs out of step.
        let (a, mut ga, _, _) = group(n);
        g.bench_function(format!("encrypt_200B/{n}"), |bench| {
            bench.iter(|| ga.create_message(&a.provider, &a.signer, &text).unwrap().tls_serialize_detached().unwrap())
        });
        let (a, mut ga, b, mut gb) = group(n);
        g.bench_function(format!("decrypt_200B/{n}"), |bench| {
            bench.iter_batched(
                || ga.create_message(&a.provider, &a.signer, &text).unwrap().tls_serialize_detached().unwrap(),
                |bytes| assert!(matches!(apply(&b, &mut gb, &bytes), ProcessedMessageContent::ApplicationMessage(_))),
                BatchSize::SmallInput,
            )
        });
        let (a, mut ga, _, _) = group(n);
        g.bench_function(format!("commit_update/{n}"), |bench| {
            bench.iter(|| {
                let bundle = ga.self_update(&a.provider, &a.signer, LeafNodeParameters::default()).unwrap();
                let bytes = bundle.into_messages().0.tls_serialize_detached().unwrap();
                ga.merge_pending_commit(&a.provider).unwrap();
                bytes
            })
        });
        let (a, mut ga, b, mut gb) = group(n);
        g.bench_function(format!("apply_commit/{n}"), |bench| {
            bench.iter_batched(
                || {
                    let bundle = ga.self_update(&a.provider, &a.signer, LeafNodeParameters::default()).unwrap();
                    let bytes = bundle.into_messages().0.tls_serialize_detached().unwrap();
                    ga.merge_pending_commit(&a.provider).unwrap();
                    bytes
                },
                |bytes| {
                    let ProcessedMessageContent::StagedCommitMessage(staged) = apply(&b, &mut gb, &bytes) else {
                        panic!("not a commit")
                    };
                    gb.merge_staged_commit(&b.provider, *staged).unwrap();
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, mls);
criterion_main!(benches);
