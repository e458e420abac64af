//! Files of end-to-end encrypted messages: each is sealed on the device
//! with AES-256-GCM under a fresh key and nonce (`ring`), uploaded as
//! `application/vnd.chatd.e2e-encrypted` under a neutral name, and its key,
//! real name, type, size and SHA-256 travel inside the MLS message
//! ([`v1::E2eFile`]); a recipient downloads the ciphertext, opens it and
//! checks the SHA-256.

use chat_protocol::v1;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::{Device, MlsError, mls};
use crate::Client;

use chat_protocol::limits::E2E_MEDIA_TYPE as E2E_MIME;
/// The name the server sees.
const NEUTRAL_NAME: &str = "encrypted.bin";

fn key_of(key: &[u8]) -> Result<LessSafeKey, MlsError> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| mls("a file key is not 32 bytes"))?))
}

fn nonce_of(nonce: &[u8]) -> Result<Nonce, MlsError> {
    Nonce::try_assume_unique_for_key(nonce).map_err(|_| mls("a file nonce is not 12 bytes"))
}

/// Seals `plain` under a fresh key: the ciphertext and what opens it.
pub fn seal(name: &str, media_type: &str, plain: &[u8]) -> Result<(Vec<u8>, v1::E2eFile), MlsError> {
    let rng = SystemRandom::new();
    let (mut key, mut nonce) = ([0u8; 32], [0u8; 12]);
    rng.fill(&mut key).and_then(|()| rng.fill(&mut nonce)).map_err(|_| mls("no randomness"))?;
    let mut sealed = plain.to_vec();
    key_of(&key)?.seal_in_place_append_tag(nonce_of(&nonce)?, Aad::empty(), &mut sealed).map_err(mls)?;
    let file = v1::E2eFile {
        attachment_id: String::new(),
        name: name.into(),
        media_type: media_type.into(),
        size: plain.len() as u64,
        sha256: ring::digest::digest(&ring::digest::SHA256, plain).as_ref().to_vec().into(),
        key: key.to_vec().into(),
        nonce: nonce.to_vec().into(),
    };
    Ok((sealed, file))
}

/// Opens a downloaded file's ciphertext and checks it is the file sent.
pub fn open(file: &v1::E2eFile, mut sealed: Vec<u8>) -> Result<Vec<u8>, MlsError> {
    let plain = key_of(&file.key)?
        .open_in_place(nonce_of(&file.nonce)?, Aad::empty(), &mut sealed)
        .map_err(|_| mls("the file does not open with its key (damaged or replaced)"))?;
    if ring::digest::digest(&ring::digest::SHA256, plain).as_ref() != file.sha256.as_ref() {
        return Err(mls("the file opened but is not the one sent (SHA-256 differs)"));
    }
    Ok(plain.to_vec())
}

impl Device {
    /// Encrypts a file, uploads it, and sends it with `text` in one E2E message.
    pub async fn send_file(
        &mut self,
        client: &Client,
        conv: u64,
        text: &str,
        (name, media_type, bytes): (&str, &str, &[u8]),
    ) -> Result<v1::SendMessageOk, MlsError> {
        let (sealed, mut file) = seal(name, media_type, bytes)?;
        let uploaded = client.upload_bytes(conv, NEUTRAL_NAME, E2E_MIME, &sealed).await?;
        file.attachment_id = uploaded.attachment_id;
        self.send_content(client, conv, v1::E2eContent { text: text.into(), files: vec![file] }).await
    }

    /// Downloads a file of an E2E message and opens it.
    pub async fn download_file(&self, client: &Client, conv: u64, file: &v1::E2eFile) -> Result<Vec<u8>, MlsError> {
        let sealed = client.download(conv, &file.attachment_id, 0, 0, false).await?.bytes().await?;
        open(file, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_opens_with_its_key_only_and_is_checked() {
        let (sealed, file) = seal("brief.pdf", "application/pdf", b"%PDF-1.7 privileged").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"privileged"), "sealed");
        assert_eq!(open(&file, sealed.clone()).unwrap(), b"%PDF-1.7 privileged");
        let mut tampered = sealed.clone();
        tampered[3] ^= 1;
        assert!(open(&file, tampered).is_err());
        let other = v1::E2eFile { sha256: vec![0; 32].into(), ..file.clone() };
        assert!(open(&other, sealed).unwrap_err().to_string().contains("SHA-256 differs"));
    }
}
