//! A restricted reader for `torch.save` files (VILA's `non_lora_trainables.bin`): a zip holding
//! `data.pkl` and one `data/<key>` entry per storage. The pickle is *interpreted*, never executed:
//! only the opcodes a dict of tensors needs are understood, and only these globals are accepted:
//! `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`,
//! `collections.OrderedDict` (empty, for backward hooks) and the f32 / bf16 / f16 storage types.
//! Anything else is refused with an error naming the file, the global or the opcode.
//!
//! The layout follows `torch/serialization.py` (`_save`, `_load`, `persistent_id`) and
//! `torch/_utils.py::_rebuild_tensor_v2`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::{DType, TensorData};

use crate::error::LoraError;
use crate::torch_zip;

const CONVERT_HINT: &str = "convert it to safetensors with `safetensors.torch.save_file(torch.load(path), \
     'non_lora_trainables.safetensors')`";

#[derive(Debug, Clone)]
struct Storage {
    dtype: DType,
    key: String,
    numel: usize,
}

#[derive(Debug, Clone)]
struct TensorRef {
    storage: Storage,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Value {
    None,
    Bool,
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(&'static str),
    Storage(Storage),
    Tensor(TensorRef),
}

const REBUILD_TENSOR: &str = "torch._utils._rebuild_tensor_v2";
const REBUILD_PARAMETER: &str = "torch._utils._rebuild_parameter";
const ORDERED_DICT: &str = "collections.OrderedDict";

/// The globals a dict of tensors needs; everything else is refused.
fn allowed_global(module: &str, name: &str) -> Result<&'static str, String> {
    Ok(match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => REBUILD_TENSOR,
        ("torch._utils", "_rebuild_parameter") => REBUILD_PARAMETER,
        ("collections", "OrderedDict") => ORDERED_DICT,
        ("torch", "FloatStorage") => "torch.FloatStorage",
        ("torch", "BFloat16Storage") => "torch.BFloat16Storage",
        ("torch", "HalfStorage") => "torch.HalfStorage",
        ("torch", storage) if storage.ends_with("Storage") => {
            return Err(format!(
                "tensor storage torch.{storage} is not supported (only float32, bfloat16, float16)"
            ));
        }
        _ => {
            return Err(format!(
                "refusing pickle global {module}.{name}: only a dict of tensors can be read"
            ));
        }
    })
}

fn storage_dtype(global: &str) -> Option<DType> {
    match global {
        "torch.FloatStorage" => Some(DType::F32),
        "torch.BFloat16Storage" => Some(DType::BF16),
        "torch.HalfStorage" => Some(DType::F16),
        _ => None,
    }
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or("pickle ends early (truncated?)")?;
        self.at = end;
        Ok(slice)
    }

    fn take_u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn take_le<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn take_str(&mut self, n: usize) -> Result<String, String> {
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }

    fn take_line(&mut self) -> Result<String, String> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("unterminated GLOBAL")?;
        let line = self.take_str(len)?;
        self.at += 1;
        Ok(line)
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("MARK missing")?;
        if mark > self.stack.len() {
            return Err("MARK beyond the stack".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn memo_put(&mut self, index: u32) -> Result<(), String> {
        let value = self.stack.last().cloned().ok_or("PUT on an empty stack")?;
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), String> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| format!("GET of unknown memo {index}"))?;
        self.stack.push(value);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("odd number of items for a dict".into());
        }
        let Value::Dict(entries) = self.top()? else {
            return Err("SETITEM(S) on something that is not a dict".into());
        };
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            entries.push((k, v));
        }
        Ok(())
    }

    fn run(mut self) -> Result<Value, String> {
        loop {
            let op = self.take_u8()?;
            match op {
                0x80 => {
                    let proto = self.take_u8()?;
                    if proto > 5 {
                        return Err(format!("pickle protocol {proto} is not supported"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'(' => self.marks.push(self.stack.len()),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err("stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.take_le()?) as usize;
                    let s = self.take_str(n)?;
                    self.stack.push(Value::Str(s));
                }
                0x8c => {
                    let n = usize::from(self.take_u8()?);
                    let s = self.take_str(n)?;
                    self.stack.push(Value::Str(s));
                }
                0x8d => {
                    let n = usize::try_from(u64::from_le_bytes(self.take_le()?))
                        .map_err(|_| "string too long")?;
                    let s = self.take_str(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'q' => {
                    let i = self.take_u8()?;
                    self.memo_put(u32::from(i))?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.take_le()?);
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).map_err(|_| "memo too large")?;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.take_u8()?;
                    self.memo_get(u32::from(i))?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.take_le()?);
                    self.memo_get(i)?;
                }
                b'c' => {
                    let module = self.take_line()?;
                    let name = self.take_line()?;
                    let global = allowed_global(&module, &name)?;
                    self.stack.push(Value::Global(global));
                }
                0x93 => {
                    let (Value::Str(name), Value::Str(module)) = (self.pop()?, self.pop()?) else {
                        return Err("STACK_GLOBAL needs two strings".into());
                    };
                    let global = allowed_global(&module, &name)?;
                    self.stack.push(Value::Global(global));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.take_le()?);
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.take_u8()?;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take_le()?);
                    self.stack.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    let n = usize::from(self.take_u8()?);
                    if n > 8 {
                        return Err("integer wider than 64 bits".into());
                    }
                    let raw = self.take(n)?;
                    let negative = raw.last().is_some_and(|b| b & 0x80 != 0);
                    let mut buf = [if negative { 0xff } else { 0 }; 8];
                    buf[..n].copy_from_slice(raw);
                    self.stack.push(Value::Int(i64::from_le_bytes(buf)));
                }
                b'N' => self.stack.push(Value::None),
                0x88 | 0x89 => self.stack.push(Value::Bool),
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent_load(pid)?);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack.push(reduce(callable, args)?);
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'.' => return self.pop(),
                other => {
                    return Err(format!(
                        "pickle opcode 0x{other:02x} at byte {} is not allowed here",
                        self.at - 1
                    ));
                }
            }
        }
    }
}

fn int(value: &Value, what: &str) -> Result<usize, String> {
    match value {
        Value::Int(i) => usize::try_from(*i).map_err(|_| format!("{what} is negative")),
        _ => Err(format!("{what} is not an integer")),
    }
}

fn ints(value: &Value, what: &str) -> Result<Vec<usize>, String> {
    match value {
        Value::Tuple(items) => items.iter().map(|v| int(v, what)).collect(),
        _ => Err(format!("{what} is not a tuple")),
    }
}

/// `('storage', torch.XStorage, key, location, numel)` → the storage it names.
fn persistent_load(pid: Value) -> Result<Value, String> {
    let Value::Tuple(items) = pid else {
        return Err("persistent id is not a tuple".into());
    };
    match items.as_slice() {
        [
            Value::Str(kind),
            Value::Global(global),
            Value::Str(key),
            _,
            numel,
        ] if kind == "storage" => {
            let dtype = storage_dtype(global)
                .ok_or_else(|| format!("persistent id names {global}, not a storage type"))?;
            Ok(Value::Storage(Storage {
                dtype,
                key: key.clone(),
                numel: int(numel, "storage size")?,
            }))
        }
        _ => Err("unsupported persistent id (expected a tensor storage)".into()),
    }
}

fn is_empty_dict(value: &Value) -> bool {
    matches!(value, Value::Dict(entries) if entries.is_empty())
}

/// Calls one of the allowed globals.
fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let (Value::Global(global), Value::Tuple(args)) = (callable, args) else {
        return Err("REDUCE needs an allowed global and a tuple".into());
    };
    match (global, args.as_slice()) {
        (ORDERED_DICT, []) => Ok(Value::Dict(Vec::new())),
        (
            REBUILD_TENSOR,
            [
                Value::Storage(storage),
                offset,
                size,
                stride,
                _grad,
                hooks,
                rest @ ..,
            ],
        ) => {
            if !is_empty_dict(hooks)
                || !rest
                    .iter()
                    .all(|m| matches!(m, Value::None) || is_empty_dict(m))
            {
                return Err("tensor with backward hooks or metadata is not supported".into());
            }
            let tensor = TensorRef {
                storage: storage.clone(),
                offset: int(offset, "storage offset")?,
                size: ints(size, "tensor size")?,
                stride: ints(stride, "tensor stride")?,
            };
            if tensor.size.len() != tensor.stride.len() {
                return Err("tensor size and stride differ in length".into());
            }
            Ok(Value::Tensor(tensor))
        }
        (REBUILD_PARAMETER, [tensor @ Value::Tensor(_), _grad, hooks]) if is_empty_dict(hooks) => {
            Ok(tensor.clone())
        }
        (global, _) => Err(format!("unexpected arguments for {global}")),
    }
}

/// Copies a (possibly strided) view out of its storage into contiguous bytes.
fn gather(tensor: &TensorRef, storage: &[u8]) -> Result<TensorData, String> {
    let size = tensor.storage.dtype.size();
    if storage.len()
        != tensor
            .storage
            .numel
            .checked_mul(size)
            .ok_or("storage too large")?
    {
        return Err(format!(
            "storage {} holds {} bytes, expected {} elements",
            tensor.storage.key,
            storage.len(),
            tensor.storage.numel
        ));
    }
    let numel = tensor
        .size
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .ok_or("tensor too large")?;
    if numel > 0 {
        let last = tensor
            .size
            .iter()
            .zip(&tensor.stride)
            .try_fold(tensor.offset, |at, (d, s)| {
                at.checked_add((d - 1).checked_mul(*s)?)
            })
            .ok_or("tensor view overflows")?;
        if last >= tensor.storage.numel {
            return Err(format!(
                "tensor view reaches element {last} of a storage of {}",
                tensor.storage.numel
            ));
        }
    }
    let mut out = Vec::with_capacity(numel * size);
    let mut index = vec![0usize; tensor.size.len()];
    for _ in 0..numel {
        let element = tensor.offset
            + index
                .iter()
                .zip(&tensor.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        out.extend_from_slice(&storage[element * size..(element + 1) * size]);
        // Row-major increment of the multi-index.
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < tensor.size[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    TensorData::try_from_bytes_vec(out, tensor.size.clone(), tensor.storage.dtype)
        .map_err(|e| e.to_string())
}

/// Reads a `torch.save`d dict of f32 / bf16 / f16 tensors (an empty dict included).
pub(crate) fn load_torch_file(path: &Path) -> Result<BTreeMap<String, TensorData>, LoraError> {
    let fail = |message: String| LoraError::Pickle {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(LoraError::io(path))?;
    if bytes.first() == Some(&0x80) {
        return Err(fail(format!(
            "legacy (pre-1.6, non-zip) torch.save format is not supported; {CONVERT_HINT}"
        )));
    }
    let entries = torch_zip::entries(&bytes).map_err(|e| fail(format!("{e}; {CONVERT_HINT}")))?;
    let pkl: Vec<&torch_zip::Entry> = entries
        .iter()
        .filter(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"))
        .collect();
    let [pkl] = pkl.as_slice() else {
        return Err(fail(format!(
            "expected one data.pkl in the archive, found {}",
            pkl.len()
        )));
    };
    let prefix = &pkl.name[..pkl.name.len() - "data.pkl".len()];
    let by_name: HashMap<&str, &torch_zip::Entry> =
        entries.iter().map(|e| (e.name.as_str(), e)).collect();
    if let Some(order) = by_name.get(format!("{prefix}byteorder").as_str()) {
        let order = order.data(&bytes).map_err(&fail)?;
        if order != b"little" {
            return Err(fail("big-endian tensors are not supported".into()));
        }
    }
    let machine = Machine {
        bytes: pkl.data(&bytes).map_err(&fail)?,
        at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = machine
        .run()
        .map_err(|e| fail(format!("{e}; {CONVERT_HINT}")))?;
    let Value::Dict(items) = root else {
        return Err(fail(format!(
            "the pickle is not a dict of tensors; {CONVERT_HINT}"
        )));
    };
    let mut tensors = BTreeMap::new();
    for (key, value) in items {
        let (Value::Str(key), Value::Tensor(tensor)) = (key, value) else {
            return Err(fail(format!(
                "the pickle is not a dict of str -> tensor; {CONVERT_HINT}"
            )));
        };
        let name = format!("{prefix}data/{}", tensor.storage.key);
        let entry = by_name
            .get(name.as_str())
            .ok_or_else(|| fail(format!("tensor {key}: storage entry {name} is missing")))?;
        let storage = entry.data(&bytes).map_err(&fail)?;
        let data = gather(&tensor, storage).map_err(|e| fail(format!("tensor {key}: {e}")))?;
        tensors.insert(key, data);
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Value, String> {
        Machine {
            bytes,
            at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
        .run()
    }

    #[test]
    fn empty_dict_protocol_2() {
        assert!(matches!(run(b"\x80\x02}q\x00.").unwrap(), Value::Dict(d) if d.is_empty()));
    }

    #[test]
    fn dangerous_globals_and_opcodes_are_refused() {
        let e = run(b"\x80\x02cos\nsystem\nq\x00.").unwrap_err();
        assert!(e.contains("os.system"), "{e}");
        let e = run(b"\x80\x02cbuiltins\neval\n.").unwrap_err();
        assert!(e.contains("builtins.eval"), "{e}");
        let e = run(b"\x80\x02ctorch\nLongStorage\n.").unwrap_err();
        assert!(e.contains("LongStorage"), "{e}");
        // BUILD (b) would set arbitrary attributes.
        let e = run(b"\x80\x02}b.").unwrap_err();
        assert!(e.contains("0x62"), "{e}");
        assert!(run(b"\x80\x02}").is_err());
        assert!(run(b"\x80\x02s.").is_err());
    }

    #[test]
    fn strided_views_are_gathered() {
        let storage: Vec<u8> = (0..6u32).flat_map(|v| (v as f32).to_le_bytes()).collect();
        let transposed = TensorRef {
            storage: Storage {
                dtype: DType::F32,
                key: "0".into(),
                numel: 6,
            },
            offset: 0,
            size: vec![3, 2],
            stride: vec![1, 3],
        };
        let data = gather(&transposed, &storage).unwrap();
        assert_eq!(data.try_to_vec::<f32>().unwrap(), [0., 3., 1., 4., 2., 5.]);
        let out_of_range = TensorRef {
            offset: 4,
            ..transposed
        };
        assert!(gather(&out_of_range, &storage).is_err());
    }
}
