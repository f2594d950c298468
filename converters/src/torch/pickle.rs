//! A data-only pickle machine for `torch.save` state dicts.
//!
//! It understands exactly the opcodes `torch.save` (pickle protocol 2, pytorch
//! `torch/serialization.py`) emits for a state dict, with opcode layouts from CPython
//! `Lib/pickletools.py`. Globals resolve only against [`super::value::resolve`]; REDUCE calls
//! only the allow-listed rebuild functions, which build descriptions, never objects. Every
//! length is checked against the bytes left, the stack, memo and nesting are capped, and every
//! value created (copies from the memo included) is charged to a budget proportional to the
//! pickle's size (RELIABILITY.md P8-P11).

use std::collections::HashMap;

use super::reader::Reader;
use super::rebuild::{call, storage_from_pid};
use super::value::{Value, depth_of, resolve};
use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::{PICKLE_MAX_MEMO, PICKLE_MAX_STACK, PICKLE_NODES_BASE, PICKLE_NODES_PER_BYTE};

/// Runs `data` to its STOP and returns the value left on the stack.
///
/// The whole stream is parsed before anything is used: bytes after STOP, a missing STOP or a
/// bad opcode anywhere reject the file (nullifAI, P11). Errors carry the opcode's byte offset.
pub fn load(data: &[u8]) -> Result<Value> {
    let budget = (data.len() as u64)
        .saturating_mul(PICKLE_NODES_PER_BYTE)
        .saturating_add(PICKLE_NODES_BASE);
    let mut m = Machine {
        r: Reader::new(data),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        nodes: 0,
        budget,
    };
    let mut op_at = 0;
    let r = m.run(&mut op_at);
    r.map_err(|e| e.at(op_at as u64))
}

struct Machine<'a> {
    r: Reader<'a>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    nodes: u64,
    budget: u64,
}

fn refuse(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unsafe { what: what.into() })
}

impl Machine<'_> {
    fn run(&mut self, op_at: &mut usize) -> Result<Value> {
        loop {
            *op_at = self.r.pos();
            let op = self.r.u8()?;
            if op == b'.' {
                break;
            }
            self.step(op)?;
        }
        *op_at = self.r.pos();
        let extra = self.r.left();
        if extra > 0 {
            return Err(Error::new(ErrorKind::TrailingBytes { extra }));
        }
        match (
            self.stack.pop(),
            self.stack.is_empty(),
            self.marks.is_empty(),
        ) {
            (Some(v), true, true) => Ok(v),
            _ => Err(malformed(
                "pickle",
                "STOP with a stack that is not one value",
            )),
        }
    }

    fn step(&mut self, op: u8) -> Result<()> {
        match op {
            0x80 => self.proto(),
            0x95 => self.frame(),
            b'(' => self.mark(),
            b'}' => self.push(Value::Dict(Vec::new(), 1)),
            b']' => self.push(Value::List(Vec::new(), 1)),
            b')' => self.push(Value::Tuple(Vec::new(), 1)),
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(self.r.array()?);
                self.push(Value::Int(i64::from(v)))
            }
            b'K' => {
                let v = self.r.u8()?;
                self.push(Value::Int(i64::from(v)))
            }
            b'M' => {
                let v = u16::from_le_bytes(self.r.array()?);
                self.push(Value::Int(i64::from(v)))
            }
            0x8a => self.long1(),
            b'G' => {
                let v = f64::from_be_bytes(self.r.array()?);
                self.push(Value::Float(v))
            }
            b'X' => {
                let n = u32::from_le_bytes(self.r.array()?);
                self.unicode(u64::from(n))
            }
            0x8c => {
                let n = self.r.u8()?;
                self.unicode(u64::from(n))
            }
            0x8d => {
                let n = u64::from_le_bytes(self.r.array()?);
                self.unicode(n)
            }
            _ => self.step_structure(op),
        }
    }

    fn step_structure(&mut self, op: u8) -> Result<()> {
        match op {
            b't' => {
                let items = self.pop_mark()?;
                self.tuple(items)
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let items = self.pop_n(n)?;
                self.tuple(items)
            }
            b'a' => {
                let v = self.pop()?;
                self.extend_list(vec![v])
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_list(items)
            }
            b's' => {
                let pair = self.pop_n(2)?;
                self.extend_dict(pair)
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend_dict(items)
            }
            _ => self.step_memo(op),
        }
    }

    fn step_memo(&mut self, op: u8) -> Result<()> {
        match op {
            b'q' => {
                let i = self.r.u8()?;
                self.put(u32::from(i))
            }
            b'r' => {
                let i = u32::from_le_bytes(self.r.array()?);
                self.put(i)
            }
            0x94 => {
                let i = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                self.put(i)
            }
            b'h' => {
                let i = self.r.u8()?;
                self.get(u32::from(i))
            }
            b'j' => {
                let i = u32::from_le_bytes(self.r.array()?);
                self.get(i)
            }
            _ => self.step_call(op),
        }
    }

    fn step_call(&mut self, op: u8) -> Result<()> {
        match op {
            b'c' => {
                let module = self.r.line()?;
                let name = self.r.line()?;
                self.global(&module, &name)
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => self.global(&m, &n),
                    _ => Err(malformed("pickle", "STACK_GLOBAL operands are not strings")),
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                let s = storage_from_pid(pid)?;
                self.push(Value::Storage(s))
            }
            b'R' => {
                let args = self.pop()?;
                let f = self.pop()?;
                let v = call(f, args)?;
                self.push(v)
            }
            b'b' => self.build(),
            _ => Err(unknown_opcode(op)),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match resolve(module, name) {
            Some(g) => self.push(Value::Global(g)),
            None => Err(refuse(format!("global `{module}.{name}`"))),
        }
    }

    /// BUILD sets an object's state. The only object a state dict builds is the OrderedDict
    /// itself (its `_metadata` attribute, which wharf drops); BUILD on anything else (a class,
    /// a module, a tensor) would mutate state and is refused (P5).
    fn build(&mut self) -> Result<()> {
        let state = self.pop()?;
        match (self.stack.last(), &state) {
            (Some(Value::Dict(..)), Value::Dict(..) | Value::None) => Ok(()),
            (Some(target), _) => Err(refuse(format!("BUILD on a {}", target.kind()))),
            (None, _) => Err(malformed("pickle", "stack underflow")),
        }
    }

    fn proto(&mut self) -> Result<()> {
        let v = self.r.u8()?;
        if !(2..=5).contains(&v) {
            return Err(Error::new(ErrorKind::Version {
                format: "pickle",
                version: u64::from(v),
            }));
        }
        Ok(())
    }

    /// FRAME announces the length of the next frame; it must fit in what is left.
    fn frame(&mut self) -> Result<()> {
        let n = u64::from_le_bytes(self.r.array()?);
        let left = self.r.left();
        if n > left {
            return Err(Error::new(ErrorKind::Truncated {
                need: n,
                have: left,
            }));
        }
        Ok(())
    }

    fn mark(&mut self) -> Result<()> {
        if self.marks.len() >= PICKLE_MAX_STACK {
            return Err(too_large("pickle MARK count", self.marks.len()));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// LONG1: a little-endian two's-complement integer of up to 8 bytes.
    fn long1(&mut self) -> Result<()> {
        let n = usize::from(self.r.u8()?);
        if n > 8 {
            return Err(too_large("LONG1 byte count", n));
        }
        let bytes = self.r.take(n as u64)?;
        let mut buf = [0u8; 8];
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        if negative {
            buf = [0xff; 8];
        }
        for (d, s) in buf.iter_mut().zip(bytes) {
            *d = *s;
        }
        self.push(Value::Int(i64::from_le_bytes(buf)))
    }

    fn unicode(&mut self, n: u64) -> Result<()> {
        let bytes = self.r.take(n)?;
        let s = std::str::from_utf8(bytes)
            .map_err(|e| malformed("pickle", format!("string is not UTF-8: {e}")))?
            .to_owned();
        self.push(Value::Str(s))
    }

    fn tuple(&mut self, items: Vec<Value>) -> Result<()> {
        let d = depth_of(&items).ok_or_else(too_deep)?;
        self.push(Value::Tuple(items, d))
    }

    fn extend_list(&mut self, items: Vec<Value>) -> Result<()> {
        let Some(Value::List(list, depth)) = self.stack.last_mut() else {
            return Err(malformed(
                "pickle",
                "APPEND to something that is not a list",
            ));
        };
        let d = depth_of(&items).ok_or_else(too_deep)?;
        *depth = (*depth).max(d);
        list.extend(items);
        Ok(())
    }

    fn extend_dict(&mut self, items: Vec<Value>) -> Result<()> {
        let Some(Value::Dict(dict, depth)) = self.stack.last_mut() else {
            return Err(malformed(
                "pickle",
                "SETITEM on something that is not a dict",
            ));
        };
        if !items.len().is_multiple_of(2) {
            return Err(malformed("pickle", "SETITEMS with an odd number of values"));
        }
        let d = depth_of(&items).ok_or_else(too_deep)?;
        *depth = (*depth).max(d);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            dict.push((k, v));
        }
        Ok(())
    }

    fn put(&mut self, i: u32) -> Result<()> {
        let top = self
            .stack
            .last()
            .ok_or_else(|| malformed("pickle", "memo put on an empty stack"))?;
        if self.memo.len() >= PICKLE_MAX_MEMO && !self.memo.contains_key(&i) {
            return Err(too_large("pickle memo entries", self.memo.len()));
        }
        let v = top.clone();
        self.charge(v.nodes())?;
        self.memo.insert(i, v);
        Ok(())
    }

    fn get(&mut self, i: u32) -> Result<()> {
        let v = self
            .memo
            .get(&i)
            .ok_or_else(|| malformed("pickle", format!("memo index {i} was never set")))?;
        let n = v.nodes();
        let v = v.clone();
        self.charge(n.saturating_sub(1))?;
        self.push(v)
    }

    fn charge(&mut self, n: u64) -> Result<()> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.budget {
            return Err(Error::new(ErrorKind::TooLarge {
                what: "pickle values (memo amplification?)",
                value: self.nodes,
                cap: self.budget,
            }));
        }
        Ok(())
    }

    fn push(&mut self, v: Value) -> Result<()> {
        if self.stack.len() >= PICKLE_MAX_STACK {
            return Err(too_large("pickle stack depth", self.stack.len()));
        }
        self.charge(1)?;
        self.stack.push(v);
        Ok(())
    }

    /// Pops one value; popping through a MARK is an underflow.
    fn pop(&mut self) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(malformed("pickle", "stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| malformed("pickle", "stack underflow"))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>> {
        let floor = self.marks.last().copied().unwrap_or(0);
        let at = self
            .stack
            .len()
            .checked_sub(n)
            .filter(|&at| at >= floor)
            .ok_or_else(|| malformed("pickle", "stack underflow"))?;
        Ok(self.stack.split_off(at))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .marks
            .pop()
            .ok_or_else(|| malformed("pickle", "no MARK to pop to"))?;
        if at > self.stack.len() {
            return Err(malformed("pickle", "stack underflow"));
        }
        Ok(self.stack.split_off(at))
    }
}

fn too_large(what: &'static str, n: usize) -> Error {
    Error::new(ErrorKind::TooLarge {
        what,
        value: n as u64,
        cap: n as u64,
    })
}

fn too_deep() -> Error {
    malformed("pickle", "containers nested too deeply")
}

/// Opcodes that exist but that a state dict never needs: refused by name.
fn unknown_opcode(op: u8) -> Error {
    let name = match op {
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x82..=0x84 => "EXT",
        b'P' => "PERSID",
        b'l' | b'd' => "LIST/DICT",
        b'I' | b'L' | b'F' | b'S' | b'V' => "text-mode literal",
        0x8b => "LONG4",
        b'B' | b'C' | 0x8e | 0x96 | 0x97 | 0x98 => "bytes/buffer",
        0x90 | 0x91 => "set",
        b'0' | b'1' | b'2' => "POP/DUP",
        b'p' | b'g' => "PUT/GET (text)",
        _ => {
            return malformed(
                "pickle",
                format!("unknown opcode 0x{op:02x} (not emitted by torch.save)"),
            );
        }
    };
    refuse(format!("pickle opcode {name} (0x{op:02x})"))
}
