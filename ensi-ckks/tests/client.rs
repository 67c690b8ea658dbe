//! The constrained client (`ensi_ckks::client`): every streamed object is byte-identical to the
//! in-memory path's serialization for the same random generator (secret key, public key, every
//! evaluation and bootstrapping key, an encrypted bundle), the streamed keys work (a
//! bootstrapper and an evaluator built from them decrypt correctly), and the client's bounded
//! decryption agrees with the full one and with the plaintext.
#![allow(clippy::unwrap_used)]

use ensi_ckks::client::{
    BundleHeader, ClientParams, MemorySink, SmallSecretKey, StreamOptions, StreamedObject,
    decrypt_bundle, decrypt_ciphertext, stream_bootstrap_keys, stream_encrypt_bundle,
    stream_encrypt_bundle_chunks, stream_evaluation_keys, stream_public_key,
};
use ensi_ckks::serialize::CiphertextBundle;
use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, CkksError, EvaluationKey,
    EvaluationKeySet, Evaluator, KeyRequest, KeySink, Parameters, ParametersLiteral, PublicKey,
    SecretDistribution, SecretKey, generate_bootstrap_keys, generate_evaluation_keys,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::Arc;

/// Collects every key it is handed, in order.
#[derive(Default)]
struct Collect(Vec<EvaluationKey>);

impl KeySink for Collect {
    type Error = CkksError;
    fn accept(&mut self, key: EvaluationKey) -> Result<(), CkksError> {
        self.0.push(key);
        Ok(())
    }
}

fn boot_literal() -> BootstrapParametersLiteral {
    BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        ..BootstrapParametersLiteral::default()
    }
}

/// The in-memory path: secret, public and every bootstrapping key (plus `extra`), serialized,
/// with the test flag set as `ensi keygen --seed` sets it.
fn in_memory(
    ctx: &Arc<CkksContext>,
    extra: &KeyRequest,
    seed: u64,
) -> (Vec<u8>, Vec<(StreamedObject, Vec<u8>)>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SecretKey::generate(ctx, &mut rng).unwrap();
    let mut sk_bytes = sk.to_bytes().unwrap().to_vec();
    ensi_ckks::serialize::mark_test_object(&mut sk_bytes).unwrap();
    let mut out = Vec::new();
    let pk = PublicKey::generate(ctx, &sk, &mut rng).unwrap();
    let mut pk_bytes = pk.to_bytes().unwrap();
    ensi_ckks::serialize::mark_test_object(&mut pk_bytes).unwrap();
    out.push((StreamedObject::PublicKey, pk_bytes));
    let mut keys = Collect::default();
    generate_bootstrap_keys(ctx, &sk, &boot_literal(), extra, &mut keys, &mut rng).unwrap();
    for key in keys.0 {
        let mut bytes = key.to_bytes().unwrap();
        ensi_ckks::serialize::mark_test_object(&mut bytes).unwrap();
        out.push((StreamedObject::of(&key), bytes));
    }
    (sk_bytes, out)
}

/// The streamed path with the same generator.
fn streamed(
    params: &Parameters,
    extra: &KeyRequest,
    seed: u64,
) -> (Vec<u8>, Vec<(StreamedObject, Vec<u8>)>) {
    let cp = ClientParams::new(params).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SmallSecretKey::generate(&cp, &mut rng).unwrap();
    let options = StreamOptions { test_keys: true };
    let mut sink = MemorySink::default();
    stream_public_key(&cp, &sk, options, &mut sink, &mut rng).unwrap();
    stream_bootstrap_keys(
        &cp,
        &sk,
        &boot_literal(),
        extra,
        options,
        &mut sink,
        &mut rng,
    )
    .unwrap();
    (sk.to_bytes(true).to_vec(), sink.objects)
}

fn assert_same(
    a: &(Vec<u8>, Vec<(StreamedObject, Vec<u8>)>),
    b: &(Vec<u8>, Vec<(StreamedObject, Vec<u8>)>),
) {
    assert_eq!(a.0, b.0, "secret key bytes");
    assert_eq!(a.1.len(), b.1.len(), "object count");
    for ((na, ba), (nb, bb)) in a.1.iter().zip(&b.1) {
        assert_eq!(na, nb, "object order");
        assert_eq!(ba.len(), bb.len(), "{na:?}: length");
        assert!(ba == bb, "{na:?}: bytes differ");
    }
}

#[test]
fn streamed_keys_are_byte_identical_to_the_in_memory_keys() {
    // Several digits (4), the encapsulation span, rotations both ways and a duplicate.
    let params =
        Parameters::new_insecure(ParametersLiteral::insecure_bootstrap_test(10, 1, 9)).unwrap();
    let ctx = CkksContext::new(params.clone()).unwrap();
    let extra = KeyRequest::new()
        .with_rotations(&ctx, &[1, -1, 3, 1])
        .with_conjugation(&ctx);
    let a = in_memory(&ctx, &extra, 7);
    let b = streamed(&params, &extra, 7);
    assert_same(&a, &b);
    // Relinearization, conjugation, the encapsulation pair and rotations are all there.
    let names: Vec<StreamedObject> = b.1.iter().map(|(n, _)| *n).collect();
    assert!(names.contains(&StreamedObject::Relinearization));
    assert!(names.contains(&StreamedObject::Galois(2 * params.n() - 1)));
    assert_eq!(
        names[names.len() - 2..],
        [StreamedObject::DenseToSparse, StreamedObject::SparseToDense]
    );
    // Another seed gives other keys.
    let c = streamed(&params, &extra, 8);
    assert_ne!(b.1[1].1, c.1[1].1);
}

#[test]
fn streamed_keys_of_a_sparse_secret_set_and_one_digit_are_identical() {
    let literal = ParametersLiteral {
        secret: SecretDistribution::SparseTernary { hamming_weight: 64 },
        dnum: 1,
        log_p: vec![61; 3],
        ..ParametersLiteral::insecure_test(10, 3)
    };
    let params = Parameters::new_insecure(literal).unwrap();
    let ctx = CkksContext::new(params.clone()).unwrap();
    let request = KeyRequest::new()
        .with_relinearization()
        .with_power_of_two_rotations(&ctx, 8);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut keys = Collect::default();
    generate_evaluation_keys(&ctx, &sk, &request, &mut keys, &mut rng).unwrap();
    let cp = ClientParams::new(&params).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let small = SmallSecretKey::generate(&cp, &mut rng).unwrap();
    assert_eq!(
        sk.to_bytes().unwrap().to_vec(),
        small.to_bytes(false).to_vec()
    );
    let mut sink = MemorySink::default();
    stream_evaluation_keys(
        &cp,
        &small,
        &request,
        StreamOptions::default(),
        &mut sink,
        &mut rng,
    )
    .unwrap();
    assert_eq!(keys.0.len(), sink.objects.len());
    for (key, (name, bytes)) in keys.0.iter().zip(&sink.objects) {
        assert_eq!(StreamedObject::of(key), *name);
        assert!(key.to_bytes().unwrap() == *bytes, "{name:?}");
    }
}

#[test]
fn streamed_keys_bootstrap_and_evaluate_without_the_secret() {
    let params =
        Parameters::new_insecure(ParametersLiteral::insecure_bootstrap_test(10, 1, 9)).unwrap();
    let ctx = CkksContext::new(params.clone()).unwrap();
    let (sk_bytes, objects) = streamed(&params, &KeyRequest::new(), 11);
    let mut set = EvaluationKeySet::new();
    for (name, bytes) in &objects {
        if *name != StreamedObject::PublicKey {
            set.insert(EvaluationKey::from_bytes(&ctx, bytes).unwrap());
        }
    }
    let keys = BootstrapKeys::from_set(set).unwrap();
    let boot = Bootstrapper::new(&ctx, boot_literal(), keys).unwrap();
    let sk = SecretKey::from_bytes(&ctx, &sk_bytes).unwrap();
    let slots = ctx.n() / 2;
    let values: Vec<f64> = (0..slots)
        .map(|i| ((i as f64) * 0.37).sin() * 0.5)
        .collect();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let pt = ctx
        .encode(&values, slots, 0, ctx.params().default_scale())
        .unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let fresh = boot.bootstrap(&ct).unwrap();
    // x^2 with the streamed relinearization key, after bootstrapping with the streamed keys.
    let eval = boot.evaluator();
    let sq = eval
        .rescale(&eval.mul_relin(&fresh, &fresh).unwrap())
        .unwrap();
    let got = ctx.decode(&sk.decrypt(&ctx, &sq).unwrap()).unwrap();
    let worst = values
        .iter()
        .zip(&got)
        .map(|(v, g)| (v * v - g).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "bootstrapped square off by {worst}");
    // The public key encrypts what the secret key decrypts.
    let pk = PublicKey::from_bytes(&ctx, &objects[0].1).unwrap();
    let top = ctx.encode(&values, slots, 3, (1u64 << 40) as f64).unwrap();
    let ct = pk.encrypt(&ctx, &top, &mut rng).unwrap();
    let back = ctx.decode(&sk.decrypt(&ctx, &ct).unwrap()).unwrap();
    assert!(values.iter().zip(&back).all(|(v, b)| (v - b).abs() < 1e-6));
}

#[test]
fn streamed_encryption_is_byte_identical_and_the_client_decrypts() {
    let params = Parameters::new_insecure(ParametersLiteral::insecure_test(11, 4)).unwrap();
    let ctx = CkksContext::new(params.clone()).unwrap();
    let cp = ClientParams::new(&params).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let small = SmallSecretKey::generate(&cp, &mut rng).unwrap();
    let sk = small.to_secret_key(&ctx).unwrap();
    let header = BundleHeader {
        layout: 0,
        content: 0,
        rows: 3,
        padded_rows: 4,
        cols: 5,
        tag: *b"testtag!",
    };
    for (slots, level) in [(ctx.n() / 2, 4), (16, 2), (1, 0)] {
        let values: Vec<f64> = (0..slots).map(|i| (i as f64 * 0.11).cos()).collect();
        let scale = (1u64 << 40) as f64;
        let mut a = ChaCha20Rng::seed_from_u64(slots as u64);
        let pt = ctx.encode(&values, slots, level, scale).unwrap();
        let ct = sk.encrypt(&ctx, &pt, &mut a).unwrap();
        let bundle = CiphertextBundle {
            layout: header.layout,
            content: header.content,
            rows: header.rows,
            padded_rows: header.padded_rows,
            cols: header.cols,
            tag: header.tag,
            cts: vec![ct.clone()],
        };
        let mut b = ChaCha20Rng::seed_from_u64(slots as u64);
        let mut sink = MemorySink::default();
        stream_encrypt_bundle(
            &cp, &small, &header, &values, slots, level, scale, &mut sink, &mut b,
        )
        .unwrap();
        assert_eq!(sink.objects.len(), 1);
        assert!(
            bundle.to_bytes().unwrap() == sink.objects[0].1,
            "{slots} slots at level {level}"
        );
        // The client's decryption, against the plaintext and the full decryption.
        let got = decrypt_ciphertext(&cp, &small, &ct.to_bytes().unwrap()).unwrap();
        let full = ctx.decode_complex(&sk.decrypt(&ctx, &ct).unwrap()).unwrap();
        for ((v, g), f) in values.iter().zip(&got).zip(&full) {
            assert!((v - g.re).abs() < 1e-7 && g.im.abs() < 1e-7, "{v} vs {g}");
            assert!((g - f).norm_sqr() < 1e-24);
        }
    }
    // Several chunks in one bundle: the bytes of the in-memory bundle of their encryptions,
    // drawn chunk after chunk from the same generator; each decrypts to its chunk.
    let slots = ctx.n() / 2;
    let chunks: Vec<Vec<f64>> = (0..3)
        .map(|k| {
            (0..slots)
                .map(|i| ((i + 7 * k) as f64 * 0.13).sin())
                .collect()
        })
        .collect();
    let scale = (1u64 << 40) as f64;
    let mut a = ChaCha20Rng::seed_from_u64(99);
    let cts: Vec<_> = chunks
        .iter()
        .map(|v| {
            let pt = ctx.encode(v, slots, 3, scale).unwrap();
            sk.encrypt(&ctx, &pt, &mut a).unwrap()
        })
        .collect();
    let bundle = CiphertextBundle {
        layout: header.layout,
        content: header.content,
        rows: header.rows,
        padded_rows: header.padded_rows,
        cols: header.cols,
        tag: header.tag,
        cts: cts.clone(),
    };
    let mut b = ChaCha20Rng::seed_from_u64(99);
    let mut sink = MemorySink::default();
    let views: Vec<&[f64]> = chunks.iter().map(Vec::as_slice).collect();
    stream_encrypt_bundle_chunks(
        &cp, &small, &header, &views, slots, 3, scale, &mut sink, &mut b,
    )
    .unwrap();
    assert_eq!(sink.objects.len(), 1);
    assert!(
        bundle.to_bytes().unwrap() == sink.objects[0].1,
        "three chunks"
    );
    let (_, decrypted) = decrypt_bundle(&cp, &small, &sink.objects[0].1).unwrap();
    for (v, got) in chunks.iter().zip(&decrypted) {
        assert!(v.iter().zip(got).all(|(x, g)| (x - g.re).abs() < 1e-7));
    }
    // No chunk, or a chunk wider than the slots: refused.
    let mut sink = MemorySink::default();
    assert!(
        stream_encrypt_bundle_chunks(
            &cp,
            &small,
            &header,
            &[],
            slots,
            3,
            scale,
            &mut sink,
            &mut b
        )
        .is_err()
    );
    let wide = vec![0.0; slots + 1];
    assert!(
        stream_encrypt_bundle_chunks(
            &cp,
            &small,
            &header,
            &[&wide],
            slots,
            3,
            scale,
            &mut sink,
            &mut b
        )
        .is_err()
    );
    // An answer after a product and a rescale (two parts, lower level, full form).
    let slots = ctx.n() / 2;
    let values: Vec<f64> = (0..slots).map(|i| (i as f64 * 0.07).sin()).collect();
    let pt = ctx.encode(&values, slots, 4, (1u64 << 40) as f64).unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let eval = Evaluator::new(&ctx, EvaluationKeySet::new()).unwrap();
    let scaled = eval.rescale(&eval.mul_const(&ct, 3.0).unwrap()).unwrap();
    let got = decrypt_ciphertext(&cp, &small, &scaled.to_bytes().unwrap()).unwrap();
    assert!(
        values
            .iter()
            .zip(&got)
            .all(|(v, g)| (3.0 * v - g.re).abs() < 1e-6)
    );
    // Keys of another set are refused.
    let other = ClientParams::new(
        &Parameters::new_insecure(ParametersLiteral::insecure_test(11, 3)).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        decrypt_ciphertext(&other, &small, &ct.to_bytes().unwrap()),
        Err(CkksError::ParamsMismatch { .. })
    ));
    // The secret key round-trips through either type's decoder.
    let bytes = small.to_bytes(false);
    assert!(SmallSecretKey::from_bytes(&cp, &bytes).is_ok());
    assert!(SecretKey::from_bytes(&ctx, &bytes).unwrap() == sk);
    let mut bad = bytes.to_vec();
    bad[20] = 0b10;
    assert!(SmallSecretKey::from_bytes(&cp, &bad).is_err());
    assert!(SmallSecretKey::from_bytes(&cp, &bytes[..bytes.len() - 1]).is_err());
    assert_eq!(
        format!("{small:?}"),
        format!(
            "SmallSecretKey {{ params_id: {:?}, .. }}",
            small.params_id()
        )
    );
}
