//! A small pickle reader that calls nothing. Two uses:
//! - [`parse`]: the CIFAR-10 python batches (a dict of byte strings, a list of small ints and one
//!   uint8 numpy array); any call other than numpy's array/dtype construction is an error.
//! - [`parse_recording`]: PyTorch archives (`data.pkl` of TorchScript and `torch.save` zips).
//!   Every call (`REDUCE`, `NEWOBJ`) and persistent id is recorded as data ([`Value::Call`],
//!   [`Value::Persistent`]) for the caller to interpret; nothing is executed.
//!
//! The official files were written by Python 2 `cPickle` (protocol 2: byte strings as
//! `SHORT_BINSTRING`/`BINSTRING`). Files re-pickled by Python 3 use either protocol 2 (bytes as
//! `_codecs.encode(str, 'latin1')`) or 3–4 (`BINBYTES`, `FRAME`, `MEMOIZE`, `STACK_GLOBAL`), so
//! those opcodes are read too. Any other opcode or any other global is an error: this is not a
//! general unpickler and calls nothing.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global {
        module: String,
        name: String,
    },
    /// `numpy.dtype(code)`.
    Dtype(String),
    /// `numpy.core.multiarray._reconstruct(...)`: an array waiting for its `BUILD` state.
    UnbuiltArray,
    /// A C-ordered numpy array; `data` holds its raw bytes.
    Array {
        shape: Vec<usize>,
        dtype: String,
        data: Vec<u8>,
    },
    /// `parse_recording` only: `module.name(*args)`, not executed; `state` is what a later `BUILD`
    /// gave it (an object's attribute dict).
    Call {
        module: String,
        name: String,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
    /// `parse_recording` only: a persistent id (PyTorch's reference to a tensor storage).
    Persistent(Box<Value>),
}

impl Value {
    /// The value under a `bytes` or `str` key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(items) = self else {
            return None;
        };
        items.iter().find_map(|(k, v)| match k {
            Value::Bytes(b) if b == key.as_bytes() => Some(v),
            Value::Str(s) if s == key => Some(v),
            _ => None,
        })
    }

    /// Short description for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::Array { shape, dtype, .. } => format!("a {dtype} array of shape {shape:?}"),
            Value::List(items) => format!("a list of {}", items.len()),
            Value::Dict(items) => format!("a dict of {} keys", items.len()),
            other => format!("{:.40}", format!("{other:?}")),
        }
    }
}

/// Unpickles `bytes`, allowing only the calls of numpy arrays. Errors say which opcode at which
/// offset was not understood.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    parse_with(bytes, false)
}

/// Unpickles `bytes`, recording every call and persistent id as data (see the module docs).
pub fn parse_recording(bytes: &[u8]) -> Result<Value, String> {
    parse_with(bytes, true)
}

/// [`parse_recording`] of the pickle at the start of `bytes`; also returns its length in bytes
/// (legacy `torch.save` files are several pickles and raw storages back to back).
pub fn parse_recording_prefix(bytes: &[u8]) -> Result<(Value, usize), String> {
    parse_prefix(bytes, true)
}

fn parse_with(bytes: &[u8], record: bool) -> Result<Value, String> {
    parse_prefix(bytes, record).map(|(value, _)| value)
}

fn parse_prefix(bytes: &[u8], record: bool) -> Result<(Value, usize), String> {
    let mut r = Reader { bytes, pos: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    // The memo holds copies, not shared references: correct for these files, which never refer
    // back to a list or dict after filling it.
    let mut memo: HashMap<u64, Value> = HashMap::new();

    loop {
        let at = r.pos;
        let op = r.u8()?;
        let err = |msg: String| format!("pickle opcode {op:#04x} at byte {at}: {msg}");
        let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| err("empty stack".into()));
        let pop_mark = |stack: &mut Vec<Value>, marks: &mut Vec<usize>| {
            let mark = marks.pop().ok_or_else(|| err("no MARK".into()))?;
            Ok::<_, String>(stack.split_off(mark))
        };
        match op {
            0x80 => {
                let proto = r.u8()?;
                if !(2..=4).contains(&proto) {
                    return Err(err(format!("pickle protocol {proto}, expected 2 to 4")));
                }
            }
            0x95 => {
                r.take(8)?; // FRAME: length of the next frame, irrelevant when all is in memory.
            }
            b'.' => return Ok((pop(&mut stack)?, r.pos)),
            b'(' => marks.push(stack.len()),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(err(format!("TUPLE{n} on a stack of {}", stack.len())));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'J' => stack.push(Value::Int(i32::from_le_bytes(r.array()?) as i64)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(u16::from_le_bytes(r.array()?) as i64)),
            0x8a => {
                // LONG1: little-endian two's complement of n ≤ 8 bytes.
                let n = r.u8()? as usize;
                if n > 8 {
                    return Err(err(format!("LONG1 of {n} bytes does not fit 64 bits")));
                }
                let b = r.take(n)?;
                let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut full = [fill; 8];
                full[..n].copy_from_slice(b);
                stack.push(Value::Int(i64::from_le_bytes(full)));
            }
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'U' | b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'T' | b'B' => {
                let n = u32::from_le_bytes(r.array()?) as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            0x8e => {
                let n = u64::from_le_bytes(r.array()?) as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    0x8c => r.u8()? as usize,
                    b'X' => u32::from_le_bytes(r.array()?) as usize,
                    _ => u64::from_le_bytes(r.array()?) as usize,
                };
                let s = std::str::from_utf8(r.take(n)?).map_err(|e| err(e.to_string()))?;
                stack.push(Value::Str(s.to_string()));
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global { module, name });
            }
            0x93 => {
                let (Value::Str(name), Value::Str(module)) = (pop(&mut stack)?, pop(&mut stack)?)
                else {
                    return Err(err("STACK_GLOBAL needs two strings".into()));
                };
                stack.push(Value::Global { module, name });
            }
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => r.u8()? as u64,
                    b'r' => u32::from_le_bytes(r.array()?) as u64,
                    _ => memo.len() as u64,
                };
                let top = stack.last().ok_or_else(|| err("empty stack".into()))?;
                memo.insert(key, top.clone());
            }
            b'h' | b'j' => {
                let key = if op == b'h' {
                    r.u8()? as u64
                } else {
                    u32::from_le_bytes(r.array()?) as u64
                };
                let v = memo
                    .get(&key)
                    .ok_or_else(|| err(format!("memo {key} unset")))?;
                stack.push(v.clone());
            }
            // REDUCE, and NEWOBJ (`cls.__new__(cls, *args)`, which the recording treats alike).
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                let value = if record {
                    // An empty OrderedDict is a dict the next SETITEMS fills (torch.save's
                    // state dicts); every other call stays a record.
                    match &callable {
                        Value::Global { module, name }
                            if module == "collections" && name == "OrderedDict" =>
                        {
                            Ok(Value::Dict(Vec::new()))
                        }
                        _ => record_call(callable, args),
                    }
                } else {
                    reduce(callable, args)
                };
                stack.push(value.map_err(err)?);
            }
            b'b' => {
                let state = pop(&mut stack)?;
                let obj = pop(&mut stack)?;
                let value = match obj {
                    Value::Call {
                        module, name, args, ..
                    } if record => Ok(Value::Call {
                        module,
                        name,
                        args,
                        state: Some(Box::new(state)),
                    }),
                    // An OrderedDict's own attributes (a state dict's `_metadata`): not needed.
                    Value::Dict(items) if record => Ok(Value::Dict(items)),
                    obj => build(obj, state),
                };
                stack.push(value.map_err(err)?);
            }
            b'Q' if record => {
                let pid = pop(&mut stack)?;
                stack.push(Value::Persistent(Box::new(pid)));
            }
            b'G' => stack.push(Value::Float(f64::from_be_bytes(r.array()?))),
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    vec![pop(&mut stack)?, v]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                let Some(Value::Dict(dict)) = stack.last_mut() else {
                    return Err(err("SETITEM(S) without a dict".into()));
                };
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    dict.push((k, v));
                }
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                let Some(Value::List(list)) = stack.last_mut() else {
                    return Err(err("APPEND(S) without a list".into()));
                };
                list.extend(items);
            }
            _ => return Err(err("not an opcode this reader knows".into())),
        }
    }
}

fn record_call(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global { module, name } = callable else {
        return Err(format!("call of {}", callable.kind()));
    };
    let Value::Tuple(args) = args else {
        return Err(format!("{module}.{name} called with {}", args.kind()));
    };
    Ok(Value::Call {
        module,
        name,
        args,
        state: None,
    })
}

/// The only calls these files contain: latin-1 bytes, numpy array and dtype construction.
fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global { module, name } = &callable else {
        return Err(format!("REDUCE of {}", callable.kind()));
    };
    let Value::Tuple(args) = args else {
        return Err(format!("{module}.{name} called with {}", args.kind()));
    };
    match (module.as_str(), name.as_str(), args.as_slice()) {
        ("_codecs", "encode", [Value::Str(s), Value::Str(enc)]) if enc == "latin1" => s
            .chars()
            .map(|c| u8::try_from(c as u32).map_err(|_| format!("{c:?} is not latin-1")))
            .collect::<Result<Vec<u8>, _>>()
            .map(Value::Bytes),
        ("builtins" | "__builtin__", "bytes", []) => Ok(Value::Bytes(Vec::new())),
        (m, "_reconstruct", _) if m.ends_with("multiarray") => Ok(Value::UnbuiltArray),
        ("numpy", "dtype", [Value::Str(code), ..]) => Ok(Value::Dtype(code.clone())),
        ("numpy", "dtype", [Value::Bytes(code), ..]) => {
            Ok(Value::Dtype(String::from_utf8_lossy(code).into_owned()))
        }
        _ => Err(format!("unsupported call {module}.{name}")),
    }
}

/// `BUILD`: numpy's `__setstate__` for arrays `(version, shape, dtype, fortran, data)`; a dtype's
/// state (byte order and such) does not matter for single bytes.
fn build(obj: Value, state: Value) -> Result<Value, String> {
    match (obj, state) {
        (Value::Dtype(code), _) => Ok(Value::Dtype(code)),
        (Value::UnbuiltArray, Value::Tuple(state)) => match state.as_slice() {
            [
                _,
                Value::Tuple(shape),
                Value::Dtype(dtype),
                fortran,
                Value::Bytes(data),
            ] => {
                if matches!(fortran, Value::Bool(true) | Value::Int(1)) {
                    return Err("Fortran-ordered array".into());
                }
                let shape = shape
                    .iter()
                    .map(|d| match d {
                        Value::Int(n) if *n >= 0 => Ok(*n as usize),
                        other => Err(format!("array dimension {}", other.kind())),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::Array {
                    shape,
                    dtype: dtype.clone(),
                    data: data.clone(),
                })
            }
            other => Err(format!("array state of {} items", other.len())),
        },
        (obj, _) => Err(format!("BUILD of {}", obj.kind())),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!(
                "pickle ends at byte {} but {n} more bytes are needed at byte {}",
                self.bytes.len(),
                self.pos
            )
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("unterminated GLOBAL name at byte {}", self.pos))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python 2 `cPickle.dumps({'labels': [3, 300], 'data': numpy.array([[1, 255]], 'u1')}, 2)`,
    /// written out opcode by opcode in the layout of the official CIFAR-10 files.
    fn python2_style() -> Vec<u8> {
        let mut p = b"\x80\x02}q\x01(U\x06labelsq\x02]q\x03(K\x03M\x2c\x01eU\x04dataq\x04".to_vec();
        p.extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\nq\x05cnumpy\nndarray\nq\x06");
        p.extend_from_slice(b"K\x00\x85U\x01b\x87Rq\x07(K\x01K\x01K\x02\x86cnumpy\ndtype\nq\x08");
        p.extend_from_slice(
            b"U\x02u1K\x00K\x01\x87Rq\x09(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",
        );
        p.extend_from_slice(b"\x89T\x02\x00\x00\x00\x01\xfftbu.");
        p
    }

    #[test]
    fn reads_a_python2_style_dict_with_an_array_and_a_list() {
        let v = parse(&python2_style()).unwrap();
        assert_eq!(
            v.get("labels"),
            Some(&Value::List(vec![Value::Int(3), Value::Int(300)]))
        );
        assert_eq!(
            v.get("data"),
            Some(&Value::Array {
                shape: vec![1, 2],
                dtype: "u1".into(),
                data: vec![1, 255]
            })
        );
    }

    #[test]
    fn decodes_latin1_bytes_and_negative_long1() {
        // (_codecs.encode('\xff', 'latin1'), -2 as LONG1)
        let p = b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1\x86R\x8a\x01\xfe\x86.";
        assert_eq!(
            parse(p).unwrap(),
            Value::Tuple(vec![Value::Bytes(vec![0xff]), Value::Int(-2)])
        );
    }

    #[test]
    fn refuses_unknown_calls_and_truncated_input() {
        let evil = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        assert!(
            parse(evil)
                .unwrap_err()
                .contains("unsupported call os.system")
        );
        let good = python2_style();
        let err = parse(&good[..good.len() - 10]).unwrap_err();
        assert!(err.contains("more bytes are needed"), "{err}");
    }

    #[test]
    fn recording_keeps_calls_objects_and_persistent_ids_as_data() {
        // pickle.dumps(Obj()) where Obj.__reduce_ex__ gives NEWOBJ + BUILD({'w': pid, 'x': 0.5}),
        // with a persistent id ('storage', 'k') as PyTorch writes for tensors; also os.system,
        // which must be recorded, not run.
        let p = b"\x80\x02cmod\nObj\n)\x81}(X\x01\x00\x00\x00w(X\x07\x00\x00\x00storageX\x01\x00\x00\x00ktQX\x01\x00\x00\x00xG?\xe0\x00\x00\x00\x00\x00\x00ub.";
        let v = parse_recording(p).unwrap();
        let Value::Call {
            module,
            name,
            args,
            state: Some(state),
        } = &v
        else {
            panic!("{v:?}")
        };
        assert_eq!(
            (module.as_str(), name.as_str(), args.len()),
            ("mod", "Obj", 0)
        );
        assert_eq!(state.get("x"), Some(&Value::Float(0.5)));
        assert_eq!(
            state.get("w"),
            Some(&Value::Persistent(Box::new(Value::Tuple(vec![
                Value::Str("storage".into()),
                Value::Str("k".into())
            ]))))
        );
        let evil = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        assert!(
            matches!(parse_recording(evil).unwrap(), Value::Call { name, .. } if name == "system")
        );
        // The strict reader still refuses persistent ids.
        assert!(parse(p).is_err());
    }
}
