//! Reading Hugging Face safetensors checkpoints (single file or sharded, f32/f16/bf16) with
//! errors that name the tensor; writing them back is in `save`.

use crate::error::{ModelError, Result};
use crate::params::ParamSource;
use crate::precision::Precision;
use burn::tensor::{DType, Device, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// An open checkpoint directory. Tensors are read lazily from memory-mapped shards and
/// converted to f32 on the target device as the model asks for them.
pub struct Checkpoint {
    dir: PathBuf,
    device: Device,
    shards: Vec<(PathBuf, Mmap)>,
    /// Tensor name → index into `shards`.
    index: BTreeMap<String, usize>,
    used: BTreeSet<String>,
    /// The dtype linear weights are held in on the device (f32 unless half-precision
    /// inference asked for bf16/f16).
    linear_dtype: DType,
}

impl Checkpoint {
    /// Opens `dir`: `model.safetensors.index.json` if present, else `model.safetensors`, else
    /// every `*.safetensors` file in it.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let files = shard_files(&dir)?;
        let mut shards = Vec::with_capacity(files.len());
        let mut index = BTreeMap::new();
        for (i, path) in files.into_iter().enumerate() {
            let file = std::fs::File::open(&path).map_err(|e| ModelError::io(&path, e))?;
            // SAFETY: the mapping is read-only; a checkpoint changed under us while loading
            // would give wrong numbers, as with any reader.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))?;
            let tensors = SafeTensors::deserialize(&mmap).map_err(|e| ModelError::Safetensors {
                path: path.clone(),
                message: e.to_string(),
            })?;
            for name in tensors.names() {
                index.insert(name.to_string(), i);
            }
            shards.push((path, mmap));
        }
        Ok(Self {
            dir,
            device: device.clone(),
            shards,
            index,
            used: BTreeSet::new(),
            linear_dtype: DType::F32,
        })
    }

    /// Holds linear weights (projections, an untied LM head) on the device in `precision`'s
    /// half dtype only, converted on the host: half-precision inference without an f32 copy
    /// of them on the device. Embeddings and norm weights stay f32, as autocast reads them.
    pub fn with_linear_weights_in(mut self, precision: Precision) -> Self {
        self.linear_dtype = precision.half().map_or(DType::F32, DType::from);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names of all tensors in the checkpoint.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Reads tensor `name` as f32 after checking its shape; marks it used.
    pub fn read_f32(&mut self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let missing = || ModelError::MissingTensor {
            dir: self.dir.clone(),
            name: name.to_string(),
            expected: expected.to_vec(),
        };
        let shard = *self.index.get(name).ok_or_else(missing)?;
        let (path, mmap) = &self.shards[shard];
        let tensors = SafeTensors::deserialize(mmap).map_err(|e| ModelError::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let view = tensors.tensor(name).map_err(|_| missing())?;
        if view.shape() != expected {
            return Err(ModelError::ShapeMismatch {
                dir: self.dir.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let data =
            to_f32(view.dtype(), view.data()).ok_or_else(|| ModelError::UnsupportedDtype {
                dir: self.dir.clone(),
                name: name.to_string(),
                dtype: format!("{:?}", view.dtype()),
            })?;
        self.used.insert(name.to_string());
        Ok(data)
    }

    /// Marks `name` as consumed without reading it: a tensor HF itself ignores, such as the
    /// `lm_head.weight` that some tied-embedding checkpoints store anyway.
    pub fn skip(&mut self, name: &str) {
        if self.index.contains_key(name) {
            self.used.insert(name.to_string());
        }
    }

    /// Fails if the checkpoint holds tensors nobody asked for (except those HF itself drops,
    /// such as precomputed rotary buffers).
    pub fn finish(self) -> Result<()> {
        let names: Vec<String> = self
            .index
            .keys()
            .filter(|n| !self.used.contains(*n) && !n.ends_with("rotary_emb.inv_freq"))
            .cloned()
            .collect();
        if names.is_empty() {
            Ok(())
        } else {
            Err(ModelError::UnexpectedTensors {
                dir: self.dir,
                names,
            })
        }
    }
}

impl ParamSource for Checkpoint {
    fn linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Tensor<2>> {
        let hf = self.read_f32(name, &[d_out, d_in])?;
        let data = TensorData::new(transpose(&hf, d_out, d_in), [d_in, d_out]);
        // Converted here, on the host: the device never holds an f32 copy.
        let data = match self.linear_dtype {
            DType::F32 => data,
            half => data.convert_dtype(half),
        };
        let dtype = data.dtype();
        Ok(Tensor::from_data(data, (&self.device, dtype)))
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Tensor<2>> {
        let data = self.read_f32(name, &[rows, cols])?;
        Ok(Tensor::from_data(
            TensorData::new(data, [rows, cols]),
            &self.device,
        ))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Tensor<1>> {
        let data = self.read_f32(name, &[len])?;
        Ok(Tensor::from_data(
            TensorData::new(data, [len]),
            &self.device,
        ))
    }
}

fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index_path = dir.join("model.safetensors.index.json");
    if index_path.exists() {
        let text =
            std::fs::read_to_string(&index_path).map_err(|e| ModelError::io(&index_path, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: index_path.clone(),
                source,
            })?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::Config {
                path: index_path.clone(),
                field: "weight_map".into(),
                message: "missing or not an object".into(),
            })?;
        let mut files = BTreeSet::new();
        for (tensor, file) in map {
            let file = file.as_str().ok_or_else(|| ModelError::Config {
                path: index_path.clone(),
                field: format!("weight_map.{tensor}"),
                message: "expected a file name".into(),
            })?;
            files.insert(dir.join(file));
        }
        return Ok(files.into_iter().collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModelError::io(
            &single,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no *.safetensors file in the directory",
            ),
        ));
    }
    Ok(files)
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let chunks2 = || {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    };
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => chunks2()
            .map(|b| half::f16::from_bits(b).to_f32())
            .collect(),
        Dtype::BF16 => chunks2()
            .map(|b| half::bf16::from_bits(b).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        _ => return None,
    })
}

pub(crate) fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}
