//! Conformance cases of encryption at rest: the
//! [`DataKeyStore`](crate::store::data_keys::DataKeyStore) part (create if
//! absent, compare-and-set re-wrap, delete, pages), and the [`Store`] facade
//! over the backend: what the backend holds has no content in the clear,
//! what the store reads is what was appended, a rotation keeps every
//! message readable, a wrong master key is refused, a shredded key leaves
//! metadata only.

use std::sync::Arc;

use bytes::Bytes;
use chat_protocol::v1::{Message, MessageBody};
use prost::Message as _;

use super::harness::{ConformanceFactory, all};
use crate::store::at_rest::master::{KeyWrap, Keyring, LocalMasterKey};
use crate::store::at_rest::{AtRest, AtRestError};
use crate::store::data_keys::DataKeyStore;
use crate::store::{Backend, MessageStore, MessageVersion, NewMessage, Store, StoreError, TargetWrite};

/// Inserts keep the first key; a re-wrap applies only over the key read; a
/// delete says whether there was one; pages cover every key once.
pub async fn data_keys_insert_replace_delete_page<F: ConformanceFactory>(f: &mut F)
where
    F::Store: DataKeyStore,
{
    let store = f.fresh().await;
    assert_eq!(store.data_key(5).await.unwrap(), None);
    assert_eq!(store.insert_data_key(5, b"first").await.unwrap(), b"first".to_vec());
    assert_eq!(store.insert_data_key(5, b"second").await.unwrap(), b"first".to_vec(), "the first key stays");
    assert!(!store.replace_data_key(5, b"stale", b"new").await.unwrap(), "a re-wrap over a stale read");
    assert!(store.replace_data_key(5, b"first", b"new").await.unwrap());
    assert_eq!(store.data_key(5).await.unwrap(), Some(b"new".to_vec()));
    for id in [0, 9, 1 << 40, u64::MAX >> 11] {
        store.insert_data_key(id, &id.to_be_bytes()).await.unwrap();
    }
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = store.data_keys_page(after, 2).await.unwrap();
        let Some(&(last, _)) = page.last() else { break };
        assert!(page.len() <= 2);
        seen.extend(page);
        after = Some(last);
    }
    seen.sort();
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [0, 5, 9, 1 << 40, u64::MAX >> 11], "every key once");
    assert!(store.delete_data_key(5).await.unwrap());
    assert!(!store.delete_data_key(5).await.unwrap());
    assert_eq!(store.data_key(5).await.unwrap(), None);
    let store = f.reopen(store).await;
    assert_eq!(store.data_key(9).await.unwrap(), Some(9u64.to_be_bytes().to_vec()), "kept across a reopen");
}

const SECRET: &str = "the privileged settlement figure";

fn message(conv: u64, seq: u64, text: &str) -> Bytes {
    let body = Some(MessageBody { content: Some(chat_protocol::v1::message_body::Content::Text(text.into())) });
    Message {
        conversation_id: conv,
        seq,
        sender_id: "ann".into(),
        client_msg_id: format!("c{seq}"),
        body,
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

fn new_message(conv: u64, seq: u64, text: &str) -> NewMessage {
    NewMessage {
        conversation_id: conv,
        seq,
        sender_id: "ann".into(),
        client_msg_id: format!("c{seq}"),
        encoded: message(conv, seq, text),
        target: None,
    }
}

fn ring(key: &Arc<LocalMasterKey>) -> Keyring {
    Keyring { current: key.clone(), previous: Vec::new() }
}

async fn raw_rows(store: &Store, conv: u64) -> Vec<(u64, Bytes)> {
    match store.backend() {
        Backend::Embedded(s) => s.read_range(conv, all()).await.unwrap(),
        Backend::Scylla(s) => s.read_range(conv, all()).await.unwrap(),
    }
}

fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

/// Through the facade, messages, an edit's latest state and the version it
/// keeps read back as appended while the backend holds none of their text;
/// after a rotation everything still reads, a store opened with only the
/// old key is refused, and a shredded conversation reads without content.
pub async fn content_is_sealed_at_rest<F: ConformanceFactory>(f: &mut F)
where
    F::Store: DataKeyStore + Into<Store>,
{
    let conv = 71;
    let old = Arc::new(LocalMasterKey::generate().0);
    let mut store: Store = f.fresh().await.into();
    store.encrypt_with(AtRest::new(ring(&old))).await.expect("a new store takes the key");
    store.append(vec![new_message(conv, 1, SECRET), new_message(conv, 2, "second")]).await.unwrap();
    let version = MessageVersion {
        conversation_id: conv,
        target_seq: 1,
        event_seq: 3,
        changed_by: "ann".into(),
        changed_at_ms: 5,
        kind: 2,
        prior: message(conv, 1, SECRET).to_vec(),
    };
    let edit = NewMessage {
        target: Some(Box::new(TargetWrite { seq: 1, latest: message(conv, 1, "edited figure"), version })),
        ..new_message(conv, 3, "edited figure")
    };
    store.append(vec![edit]).await.unwrap();

    let read = store.read_range(conv, all()).await.unwrap();
    assert_eq!(
        read,
        vec![
            (1, message(conv, 1, "edited figure")),
            (2, message(conv, 2, "second")),
            (3, message(conv, 3, "edited figure"))
        ]
    );
    assert_eq!(store.message_versions(conv, 1).await.unwrap()[0].prior, message(conv, 1, SECRET).to_vec());
    for (seq, raw) in raw_rows(&store, conv).await {
        assert!(!holds(&raw, "edited") && !holds(&raw, "second"), "seq {seq} is sealed in the backend");
        assert_eq!(Message::decode(&*raw).unwrap().sender_id, "ann", "metadata stays readable");
    }
    let raw_version = match store.backend() {
        Backend::Embedded(s) => s.message_versions(conv, 1).await.unwrap(),
        Backend::Scylla(s) => s.message_versions(conv, 1).await.unwrap(),
    };
    assert!(!holds(&raw_version[0].prior, SECRET), "the kept version is sealed too");

    let new = Arc::new(LocalMasterKey::generate().0);
    let rotated = store.rotate_master_key(new.clone()).await.unwrap();
    assert_eq!((rotated.rewrapped, rotated.already), (2, 0), "the check key and the conversation's");
    assert_eq!(store.rotate_master_key(new.clone()).await.unwrap().rewrapped, 0, "a repeat re-wraps nothing");
    assert_eq!(store.read_range(conv, all()).await.unwrap(), read, "readable after the rotation");

    let mut stale = Store::from_backend(store.into_backend());
    match stale.encrypt_with(AtRest::new(ring(&old))).await {
        Err(StoreError::AtRest(AtRestError::UnknownMasterKey { id, .. })) => assert_eq!(id, new.id()),
        other => panic!("the old key after a rotation: {:?}", other.err()),
    }
    let mut store = Store::from_backend(stale.into_backend());
    store.encrypt_with(AtRest::new(ring(&new))).await.expect("the new key opens it");
    assert!(store.shred_conversation(conv).await.unwrap());
    let shredded = store.read_range(conv, all()).await.unwrap();
    assert_eq!(shredded.len(), 3, "the messages stay, as metadata");
    let first = Message::decode(&*shredded[0].1).unwrap();
    assert_eq!((first.sender_id.as_str(), first.body), ("ann", None), "no content is left to read");
    assert!(store.is_shredded(conv).await.unwrap());
    match store.append(vec![new_message(conv, 4, "after the erasure")]).await {
        Err(StoreError::AtRest(AtRestError::Erased { conversation_id })) => assert_eq!(conversation_id, conv),
        other => panic!("content for a shredded conversation: {other:?}"),
    }
    assert_eq!(store.read_range(conv, all()).await.unwrap().len(), 3, "no key was made in its place");
    assert!(!store.shred_conversation(conv).await.unwrap(), "a second shredding finds it destroyed");
    let rotated = store.rotate_master_key(Arc::new(LocalMasterKey::generate().0)).await.unwrap();
    assert_eq!(rotated.rewrapped, 1, "a rotation passes the destroyed key by (the check key only)");
    // A conversation that never had a key is marked all the same.
    assert!(!store.shred_conversation(conv + 1).await.unwrap());
    assert!(store.is_shredded(conv + 1).await.unwrap() && !store.is_shredded(conv + 2).await.unwrap());
}
