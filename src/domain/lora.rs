//! A LoRA upload checked against the transformer it will be fused into, from its safetensors
//! header alone (a few kilobytes), before the file is kept: every key must name a linear layer
//! of the LTX-2.3 DiT as `diffusion_model.<module>.lora_A.weight` / `.lora_B.weight`, pairs
//! complete, one rank, shapes that fit the layer, an allowed dtype, data inside the file.
//!
//! We parse the header ourselves (it is 8 bytes of length and a JSON object) rather than with
//! the `safetensors` crate, whose reader wants the whole file in memory; LoRAs run to gigabytes.
use serde::Deserialize;
use std::collections::BTreeMap;

/// The widths a LoRA must match (the LTX-2.3 checkpoint's transformer config; `ltx_core`'s
/// `BasicAVTransformerBlock`, `Attention`, `FeedForward`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transformer {
    pub name: &'static str,
    /// Video stream width (heads × head dim).
    pub video_dim: u64,
    /// Audio stream width.
    pub audio_dim: u64,
    pub heads: u64,
    pub blocks: u64,
    /// Channels of a latent token going in and out (`patchify_proj`, `proj_out`).
    pub latent_channels: u64,
}

pub const LTX_2_3: Transformer =
    Transformer { name: "LTX-2.3", video_dim: 4096, audio_dim: 2048, heads: 32, blocks: 48, latent_channels: 128 };

impl Transformer {
    /// `(in_features, out_features)` of the linear layer at `module`, if the model has one.
    pub fn linear(&self, module: &str) -> Option<(u64, u64)> {
        let (v, a, c) = (self.video_dim, self.audio_dim, self.latent_channels);
        match module {
            "patchify_proj" => return Some((c, v)),
            "audio_patchify_proj" => return Some((c, a)),
            "proj_out" => return Some((v, c)),
            "audio_proj_out" => return Some((a, c)),
            _ => {}
        }
        let rest = module.strip_prefix("transformer_blocks.")?;
        let (index_text, layer) = rest.split_once('.')?;
        let index: u64 = index_text.parse().ok()?;
        if index >= self.blocks || index.to_string() != index_text {
            return None; // "07" and "+7" name no block
        }
        match layer {
            "ff.net.0.proj" => return Some((v, 4 * v)),
            "ff.net.2" => return Some((4 * v, v)),
            "audio_ff.net.0.proj" => return Some((a, 4 * a)),
            "audio_ff.net.2" => return Some((4 * a, a)),
            _ => {}
        }
        let (attention, projection) = layer.split_once('.')?;
        // (query width, context width, inner width) of each attention.
        let (query, context, inner) = match attention {
            "attn1" | "attn2" => (v, v, v),
            "audio_attn1" | "audio_attn2" => (a, a, a),
            "audio_to_video_attn" => (v, a, a),
            "video_to_audio_attn" => (a, v, a),
            _ => return None,
        };
        match projection {
            "to_q" => Some((query, inner)),
            "to_k" | "to_v" => Some((context, inner)),
            "to_out.0" => Some((inner, query)),
            "to_gate_logits" => Some((query, self.heads)),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LoraLimits {
    /// A real LoRA's header is kilobytes; a bigger claim is refused before it is read.
    pub max_header_bytes: u64,
    pub max_rank: u64,
}

pub const DEFAULT_LIMITS: LoraLimits = LoraLimits { max_header_bytes: 16 * 1024 * 1024, max_rank: 1024 };

/// What an accepted LoRA holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoraSummary {
    pub rank: u64,
    /// Layers it changes.
    pub layers: usize,
    pub dtype: String,
}

/// Reads the header length from the first 8 bytes of a file of `file_len` bytes.
pub fn header_len(prefix: [u8; 8], file_len: u64, limits: &LoraLimits) -> Result<u64, String> {
    let n = u64::from_le_bytes(prefix);
    if n > limits.max_header_bytes {
        return Err(format!(
            "the safetensors header claims {n} bytes; a LoRA header may be at most {} bytes",
            limits.max_header_bytes
        ));
    }
    if 8 + n > file_len {
        return Err(format!(
            "the file is truncated: its safetensors header claims {n} bytes but the file has only {file_len}"
        ));
    }
    Ok(n)
}

#[derive(Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

const LORA_A: &str = ".lora_A.weight";
const LORA_B: &str = ".lora_B.weight";

fn element_bytes(dtype: &str) -> Option<u64> {
    match dtype {
        "F32" => Some(4),
        "F16" | "BF16" => Some(2),
        _ => None,
    }
}

/// Checks a header (the JSON after the length) of a file whose data section is `data_len`
/// bytes. The error names the first bad key (keys in sorted order) and what is wrong with it.
pub fn check_header(
    header: &[u8],
    data_len: u64,
    model: &Transformer,
    limits: &LoraLimits,
) -> Result<LoraSummary, String> {
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| format!("the safetensors header is not a JSON object of tensors ({e})"))?;
    let expected = |key: &str| {
        format!(
            "`{key}` is not a LoRA weight for {}: keys must be diffusion_model.<layer>.lora_A.weight or \
             diffusion_model.<layer>.lora_B.weight",
            model.name
        )
    };
    // module → (rank from lora_A, rank from lora_B)
    let mut layers: BTreeMap<String, (Option<u64>, Option<u64>)> = BTreeMap::new();
    let mut rank: Option<(u64, String)> = None;
    let mut dtype: Option<String> = None;
    let mut extents: Vec<(u64, u64, &str)> = Vec::new();
    for (key, value) in &entries {
        if key == "__metadata__" {
            continue;
        }
        let entry: TensorEntry =
            serde_json::from_value(value.clone()).map_err(|_| format!("`{key}` is not a valid tensor entry"))?;
        let path = key.strip_prefix("diffusion_model.").ok_or_else(|| expected(key))?;
        let (module, is_a) = match (path.strip_suffix(LORA_A), path.strip_suffix(LORA_B)) {
            (Some(m), _) => (m, true),
            (_, Some(m)) => (m, false),
            _ => return Err(expected(key)),
        };
        let (fan_in, fan_out) =
            model.linear(module).ok_or_else(|| format!("`{key}`: {} has no layer `{module}`", model.name))?;
        let size = element_bytes(&entry.dtype)
            .ok_or_else(|| format!("`{key}`: dtype {} is not allowed (use F32, F16 or BF16)", entry.dtype))?;
        let [rows, cols] = entry.shape[..] else {
            return Err(format!("`{key}` has shape {:?}; a LoRA weight is a matrix", entry.shape));
        };
        let (this_rank, fits) = if is_a { (rows, cols == fan_in) } else { (cols, rows == fan_out) };
        if !fits {
            let want = if is_a { format!("[rank, {fan_in}]") } else { format!("[{fan_out}, rank]") };
            return Err(format!("`{key}` has shape [{rows}, {cols}]; layer `{module}` needs {want}"));
        }
        if this_rank == 0 || this_rank > limits.max_rank {
            return Err(format!("`{key}` has rank {this_rank}; ranks from 1 to {} are accepted", limits.max_rank));
        }
        match &rank {
            None => rank = Some((this_rank, key.clone())),
            Some((r, first)) if *r != this_rank => {
                return Err(format!("`{key}` has rank {this_rank} but `{first}` has rank {r}; one LoRA has one rank"))
            }
            Some(_) => {}
        }
        let [start, end] = entry.data_offsets;
        let bytes = rows.checked_mul(cols).and_then(|n| n.checked_mul(size));
        if end < start || Some(end - start) != bytes {
            return Err(format!("`{key}`: its data offsets [{start}, {end}] do not match its shape and dtype"));
        }
        if end > data_len {
            return Err(format!(
                "`{key}`: its data ends at byte {end} of a data section of {data_len} bytes (is the file truncated?)"
            ));
        }
        extents.push((start, end, key));
        dtype.get_or_insert_with(|| entry.dtype.clone());
        let slot = layers.entry(module.to_owned()).or_default();
        if is_a {
            slot.0 = Some(this_rank);
        } else {
            slot.1 = Some(this_rank);
        }
    }
    for (module, (a, b)) in &layers {
        match (a, b) {
            (Some(_), None) => {
                return Err(format!("`diffusion_model.{module}{LORA_B}` is missing (its lora_A is there)"))
            }
            (None, Some(_)) => {
                return Err(format!("`diffusion_model.{module}{LORA_A}` is missing (its lora_B is there)"))
            }
            _ => {}
        }
    }
    let (Some((rank, _)), Some(dtype)) = (rank, dtype) else {
        return Err("the file holds no LoRA weights".into());
    };
    check_tiling(extents, data_len)?;
    Ok(LoraSummary { rank, layers: layers.len(), dtype })
}

/// The tensors' bytes must tile the data section, as the safetensors format requires: no two
/// overlap (one weight read as two) and no byte belongs to none (hidden content).
fn check_tiling(mut extents: Vec<(u64, u64, &str)>, data_len: u64) -> Result<(), String> {
    extents.sort_unstable();
    let mut covered = 0;
    let mut previous: Option<&str> = None;
    for (start, end, key) in extents {
        if start < covered {
            let other = previous.unwrap_or_default();
            return Err(format!("`{key}`: its data overlaps the data of `{other}`"));
        }
        if start > covered {
            return Err(format!("`{key}`: bytes {covered} to {start} of the data section belong to no tensor"));
        }
        covered = end;
        previous = Some(key);
    }
    if covered != data_len {
        return Err(format!(
            "the file has {} bytes after its last tensor's data; a LoRA file holds only its tensors",
            data_len - covered
        ));
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::json;

    /// A safetensors file of zero-filled F16 tensors, `(key, shape)` in order.
    pub fn safetensors(tensors: &[(&str, [u64; 2])]) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut offset = 0;
        for (key, shape) in tensors {
            let bytes = shape[0] * shape[1] * 2;
            header.insert(
                key.to_string(),
                json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
        }
        header.insert("__metadata__".into(), json!({"format": "pt"}));
        let header = serde_json::to_vec(&header).unwrap();
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(&header);
        file.resize(file.len() + offset as usize, 0);
        file
    }

    fn check(file: &[u8]) -> Result<LoraSummary, String> {
        let n = header_len(file[..8].try_into().unwrap(), file.len() as u64, &DEFAULT_LIMITS)?;
        let header = &file[8..8 + n as usize];
        check_header(header, file.len() as u64 - 8 - n, &LTX_2_3, &DEFAULT_LIMITS)
    }

    const Q_A: &str = "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight";
    const Q_B: &str = "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight";

    #[test]
    fn an_ltx_shaped_lora_is_accepted() {
        let file = safetensors(&[
            (Q_A, [4, 4096]),
            (Q_B, [4096, 4]),
            ("diffusion_model.transformer_blocks.47.audio_to_video_attn.to_out.0.lora_A.weight", [4, 2048]),
            ("diffusion_model.transformer_blocks.47.audio_to_video_attn.to_out.0.lora_B.weight", [4096, 4]),
            ("diffusion_model.transformer_blocks.3.audio_ff.net.0.proj.lora_A.weight", [4, 2048]),
            ("diffusion_model.transformer_blocks.3.audio_ff.net.0.proj.lora_B.weight", [8192, 4]),
        ]);
        assert_eq!(check(&file), Ok(LoraSummary { rank: 4, layers: 3, dtype: "F16".into() }));
    }

    #[test]
    fn the_layer_table_matches_the_model() {
        let m = LTX_2_3;
        assert_eq!(m.linear("transformer_blocks.0.attn2.to_k"), Some((4096, 4096)));
        assert_eq!(m.linear("transformer_blocks.12.video_to_audio_attn.to_k"), Some((4096, 2048)));
        assert_eq!(m.linear("transformer_blocks.12.video_to_audio_attn.to_q"), Some((2048, 2048)));
        assert_eq!(m.linear("transformer_blocks.12.audio_to_video_attn.to_q"), Some((4096, 2048)));
        assert_eq!(m.linear("transformer_blocks.5.attn1.to_gate_logits"), Some((4096, 32)));
        assert_eq!(m.linear("transformer_blocks.5.ff.net.2"), Some((16384, 4096)));
        assert_eq!(m.linear("patchify_proj"), Some((128, 4096)));
        for missing in [
            "transformer_blocks.48.attn1.to_q",
            "transformer_blocks.07.attn1.to_q",
            "transformer_blocks.-1.attn1.to_q",
            "transformer_blocks.0.attn3.to_q",
            "transformer_blocks.0.attn1.to_x",
            "transformer_blocks.0",
            "blocks.0.attn1.to_q",
        ] {
            assert_eq!(m.linear(missing), None, "{missing}");
        }
    }

    #[test]
    fn each_problem_is_named() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                safetensors(&[("lora_unet_blocks_0_attn.lora_down.weight", [4, 4096])]),
                "`lora_unet_blocks_0_attn.lora_down.weight` is not a LoRA weight for LTX-2.3",
            ),
            (
                safetensors(&[(Q_A, [4, 4096])]),
                "`diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight` is missing",
            ),
            (safetensors(&[(Q_A, [4, 4096]), (Q_B, [2048, 4])]), "needs [4096, rank]"),
            (safetensors(&[(Q_A, [4, 3072]), (Q_B, [4096, 4])]), "needs [rank, 4096]"),
            (safetensors(&[(Q_A, [4, 4096]), (Q_B, [4096, 8])]), "one LoRA has one rank"),
            (
                safetensors(&[("diffusion_model.transformer_blocks.60.attn1.to_q.lora_A.weight", [4, 4096])]),
                "has no layer `transformer_blocks.60.attn1.to_q`",
            ),
            (safetensors(&[]), "holds no LoRA weights"),
        ];
        for (file, needle) in cases {
            let err = check(&file).unwrap_err();
            assert!(err.contains(needle), "`{err}` does not contain `{needle}`");
        }
    }

    #[test]
    fn truncated_and_oversized_headers_are_refused_before_parsing() {
        let mut file = safetensors(&[(Q_A, [4, 4096]), (Q_B, [4096, 4])]);
        file.truncate(file.len() - 100);
        assert!(check(&file).unwrap_err().contains("is the file truncated?"));
        file.truncate(20);
        assert!(check(&file).unwrap_err().contains("the file is truncated"));

        let mut huge = (1u64 << 40).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(check(&huge).unwrap_err().contains("claims 1099511627776 bytes"));
    }

    #[test]
    fn dtypes_and_offsets_are_checked() {
        let header = json!({
            Q_A: {"dtype": "I8", "shape": [4, 4096], "data_offsets": [0, 16384]},
        });
        let err = check_header(&serde_json::to_vec(&header).unwrap(), 1 << 20, &LTX_2_3, &DEFAULT_LIMITS).unwrap_err();
        assert!(err.contains("dtype I8 is not allowed"), "{err}");
        let header = json!({
            Q_A: {"dtype": "F16", "shape": [4, 4096], "data_offsets": [0, 100]},
        });
        let err = check_header(&serde_json::to_vec(&header).unwrap(), 1 << 20, &LTX_2_3, &DEFAULT_LIMITS).unwrap_err();
        assert!(err.contains("do not match its shape"), "{err}");
        let err = check_header(b"[1, 2]", 10, &LTX_2_3, &DEFAULT_LIMITS).unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
    }

    #[test]
    fn tensors_must_tile_the_data_without_overlap_gaps_or_trailing_bytes() {
        let pair = |a: [u64; 2], b: [u64; 2]| {
            serde_json::to_vec(&json!({
                Q_A: {"dtype": "F16", "shape": [4, 4096], "data_offsets": a},
                Q_B: {"dtype": "F16", "shape": [4096, 4], "data_offsets": b},
            }))
            .unwrap()
        };
        let n = 4 * 4096 * 2;
        let check = |header: Vec<u8>, data_len| check_header(&header, data_len, &LTX_2_3, &DEFAULT_LIMITS);
        assert!(check(pair([0, n], [n, 2 * n]), 2 * n).is_ok(), "back to back, exactly filling the data");
        let overlap = check(pair([0, n], [0, n]), 2 * n).unwrap_err();
        assert!(overlap.contains("overlaps the data of"), "{overlap}");
        let gap = check(pair([0, n], [n + 2, 2 * n + 2]), 2 * n + 2).unwrap_err();
        assert!(gap.contains("belong to no tensor"), "{gap}");
        let trailing = check(pair([0, n], [n, 2 * n]), 2 * n + 10).unwrap_err();
        assert!(trailing.contains("10 bytes after its last tensor"), "{trailing}");
    }
}
