//! Ciphertext bundles (`FORMAT.md` §4.10): several ciphertexts of one context that together
//! hold a matrix, with the layout, shape and content a reader needs to use them, and an opaque
//! tag naming what produced them (a model, for encrypted activations).

use super::wire::{Reader, read_header, write_header};
use super::{ObjectType, field};
use crate::ciphertext::Ciphertext;
use crate::context::CkksContext;
use crate::error::{CkksError, FormatError};
use crate::params::ParamsId;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// The most ciphertexts a bundle may hold (a decoder refuses more before allocating).
pub const MAX_BUNDLE_CIPHERTEXTS: usize = 1 << 20;

/// Several ciphertexts holding one matrix (`FORMAT.md` §4.10). The meaning of `layout` and
/// `content` belongs to the application (ensi-nn: layout 0 column-block, 1 column; content
/// 0 input activations, 1 final hidden state, 2 logits, 3 a new token, 4 a key/value cache);
/// this crate checks only the encoding and that every ciphertext belongs to the context.
#[derive(Clone, Debug)]
pub struct CiphertextBundle {
    /// Layout code.
    pub layout: u8,
    /// Content code.
    pub content: u8,
    /// The number of meaningful rows (tokens).
    pub rows: u32,
    /// The number of rows encrypted (padded), at least `rows`.
    pub padded_rows: u32,
    /// The number of columns.
    pub cols: u32,
    /// An opaque tag of what produced the bundle (a model fingerprint).
    pub tag: [u8; 8],
    /// The ciphertexts, at least one.
    pub cts: Vec<Ciphertext>,
}

impl CiphertextBundle {
    /// The bundle's fields other than its ciphertexts.
    pub fn header(&self) -> BundleHeader {
        BundleHeader {
            layout: self.layout,
            content: self.content,
            rows: self.rows,
            padded_rows: self.padded_rows,
            cols: self.cols,
            tag: self.tag,
        }
    }

    /// Serializes the bundle: its header, fields, then each ciphertext's own encoding
    /// (§4.5) behind a `u64` length.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        let first = self.cts.first().ok_or(FormatError::InvalidField {
            field: "ciphertext_count",
            value: 0,
        })?;
        let mut out = Vec::new();
        self.header()
            .write_prefix(&mut out, first.params_id(), self.cts.len())?;
        for ct in &self.cts {
            let bytes = ct.to_bytes()?;
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Decodes a bundle of `ctx`: the header's parameter id and every ciphertext's must be the
    /// context's, the ciphertexts' flags zero, `0 < rows <= padded_rows`, `cols > 0`, `1..=`[`MAX_BUNDLE_CIPHERTEXTS`]
    /// ciphertexts, each length within the remaining bytes, nothing after the last.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let (header, encoded) = split_bundle(bytes, ctx.id())?;
        let cts = encoded
            .into_iter()
            .map(|ct| Ciphertext::from_bytes(ctx, ct))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            layout: header.layout,
            content: header.content,
            rows: header.rows,
            padded_rows: header.padded_rows,
            cols: header.cols,
            tag: header.tag,
            cts,
        })
    }
}

/// The fields of a ciphertext bundle other than its ciphertexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleHeader {
    /// Layout code.
    pub layout: u8,
    /// Content code.
    pub content: u8,
    /// Meaningful rows.
    pub rows: u32,
    /// Encrypted (padded) rows.
    pub padded_rows: u32,
    /// Columns.
    pub cols: u32,
    /// Opaque tag (a model fingerprint).
    pub tag: [u8; 8],
}

impl BundleHeader {
    /// Appends what precedes the ciphertexts of a bundle of `count` ciphertexts of parameter
    /// set `id`: the header, these fields and the count (each ciphertext then follows behind
    /// its `u64` length).
    pub(crate) fn write_prefix(
        &self,
        out: &mut Vec<u8>,
        id: ParamsId,
        count: usize,
    ) -> Result<(), CkksError> {
        write_header(out, ObjectType::CiphertextBundle, id);
        out.push(self.layout);
        out.push(self.content);
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.padded_rows.to_le_bytes());
        out.extend_from_slice(&self.cols.to_le_bytes());
        out.extend_from_slice(&self.tag);
        let count: u32 = field("ciphertext_count", count)?;
        out.extend_from_slice(&count.to_le_bytes());
        Ok(())
    }
}

/// Checks a bundle's framing (see [`CiphertextBundle::from_bytes`]) for parameter set `id`
/// and returns its fields and each ciphertext's encoding, undecoded: a constrained client
/// decodes them one at a time.
pub fn split_bundle(bytes: &[u8], id: ParamsId) -> Result<(BundleHeader, Vec<&[u8]>), CkksError> {
    let mut r = Reader::new(bytes);
    let found = read_header(&mut r, ObjectType::CiphertextBundle)?;
    if found != id {
        return Err(CkksError::ParamsMismatch {
            expected: id,
            found,
        });
    }
    let layout = r.u8()?;
    let content = r.u8()?;
    let rows = r.u32()?;
    let padded_rows = r.u32()?;
    let cols = r.u32()?;
    let tag: [u8; 8] = r.array()?;
    let bad = |field: &'static str, value: u64| -> CkksError {
        FormatError::InvalidField { field, value }.into()
    };
    if rows == 0 || padded_rows < rows {
        return Err(bad("rows", u64::from(rows)));
    }
    if cols == 0 {
        return Err(bad("cols", 0));
    }
    let count = r.u32()? as usize;
    if count == 0 || count > MAX_BUNDLE_CIPHERTEXTS {
        return Err(bad("ciphertext_count", count as u64));
    }
    let mut cts = Vec::new();
    for _ in 0..count {
        let len = u64::from_le_bytes(r.array()?);
        let len = usize::try_from(len).map_err(|_| bad("ciphertext_len", len))?;
        let inner = r.take(len)?;
        // Ciphertexts carry no flags (only keys and parameters are marked as test objects).
        if let Some(&flags) = inner.get(7).filter(|&&f| f != 0) {
            return Err(bad("ciphertext_flags", u64::from(flags)));
        }
        cts.push(inner);
    }
    r.finish()?;
    Ok((
        BundleHeader {
            layout,
            content,
            rows,
            padded_rows,
            cols,
            tag,
        },
        cts,
    ))
}
