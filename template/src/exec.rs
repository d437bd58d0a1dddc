//! Execution: Go 1.19's `text/template/exec.go` over [`Value`]s, with missingkey=default, plus the bounds of
//! [`Limits`]. Errors carry node positions and source text, never values.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::funcs::{self, CallError, Param};
use crate::parse::{Cmd, Control, List, Node, OpKind, Operand, Pipe, Set};
use crate::value::{ElemTy, IntTy, Value};
use crate::{Error, LimitKind, Limits};

/// How a list walk ended: normally, or through `{{break}}`/`{{continue}}` bubbling to the enclosing range.
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Why execution stopped, before it is given the template's name and position.
pub(crate) enum Fail {
    /// Go fails here too; the message is fixed wording, function and type names only.
    Go(usize, String),
    Unsupported(usize, String, &'static str),
    Limit(LimitKind),
}

pub(crate) type R<T> = Result<T, Fail>;

pub(crate) struct State<'a> {
    set: &'a Set,
    pub(crate) limits: &'a Limits,
    out: Vec<u8>,
    steps: u64,
    vars: Vec<(String, Value)>,
    depth: usize,
}

fn go<T>(pos: usize, msg: impl Into<String>) -> R<T> {
    Err(Fail::Go(pos, msg.into()))
}

impl<'a> State<'a> {
    pub(crate) fn step(&mut self) -> R<()> {
        self.step_n(1)
    }

    /// Charges `n` steps at once: work proportional to a value's size (copying lists, long strings) counts, so
    /// that a loop growing a value cannot take quadratic time under the step bound.
    pub(crate) fn step_n(&mut self, n: u64) -> R<()> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(Fail::Limit(LimitKind::Steps));
        }
        Ok(())
    }

    /// Rejects a string (output or intermediate) longer than the output bound.
    pub(crate) fn check_len(&self, len: usize) -> R<()> {
        if len > self.limits.max_output {
            return Err(Fail::Limit(LimitKind::Output));
        }
        Ok(())
    }

    fn write(&mut self, b: &[u8]) -> R<()> {
        self.check_len(self.out.len().saturating_add(b.len()))?;
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn walk(&mut self, dot: &Value, list: &List) -> R<Flow> {
        for node in list {
            self.step()?;
            match node {
                Node::Text(t) => self.write(t)?,
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print_value(pipe.pos, &v)?;
                    }
                }
                Node::If(c) => match self.walk_if_or_with(false, dot, c)? {
                    Flow::Normal => {}
                    f => return Ok(f),
                },
                Node::With(c) => match self.walk_if_or_with(true, dot, c)? {
                    Flow::Normal => {}
                    f => return Ok(f),
                },
                Node::Range(c) => self.walk_range(dot, c)?,
                Node::Template { pos, name, pipe } => self.walk_template(dot, *pos, name, pipe.as_ref())?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn print_value(&mut self, pos: usize, v: &Value) -> R<()> {
        let b = match v {
            Value::Nil => b"<no value>".to_vec(),
            v => crate::fmt::print_v(v).map_err(|why| Fail::Unsupported(pos, "print".into(), why))?,
        };
        self.write(&b)
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Value, c: &Control) -> R<Flow> {
        let mark = self.vars.len();
        let r = (|| {
            let val = self.eval_pipeline(dot, &c.pipe)?;
            if val.truth() {
                if with { self.walk(&val, &c.list) } else { self.walk(dot, &c.list) }
            } else if let Some(e) = &c.else_list {
                self.walk(dot, e)
            } else {
                Ok(Flow::Normal)
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, c: &Control) -> R<()> {
        let mark = self.vars.len();
        let r = self.walk_range_inner(dot, c);
        self.vars.truncate(mark);
        r
    }

    fn walk_range_inner(&mut self, dot: &Value, c: &Control) -> R<()> {
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let mark = self.vars.len();
        let items: Vec<(Value, Value)> = match &val {
            Value::List(l, _) => {
                l.iter().enumerate().map(|(i, v)| (Value::int(i as i64), v.clone())).collect()
            }
            Value::Map(m, _) => {
                m.borrow().iter().map(|(k, v)| (Value::str(k.as_slice()), v.clone())).collect()
            }
            Value::Nil => Vec::new(),
            _ => {
                return go(c.pipe.pos, format!("range can't iterate over value of type {}", val.type_name()));
            }
        };
        if items.len() as u64 > self.limits.max_range {
            return Err(Fail::Limit(LimitKind::Range));
        }
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                self.walk(dot, e)?;
            }
            return Ok(());
        }
        for (index, elem) in items {
            self.step()?;
            // The range pipeline pushed its one or two variables last (Go's setTopVar(1) and setTopVar(2)).
            let n = c.pipe.decl.len();
            if n > 0 {
                self.vars[mark - 1].1 = elem.clone();
            }
            if n > 1 {
                self.vars[mark - 2].1 = index;
            }
            let flow = self.walk(&elem, &c.list);
            self.vars.truncate(mark);
            match flow? {
                Flow::Break => break,
                Flow::Normal | Flow::Continue => {}
            }
        }
        Ok(())
    }

    fn walk_template(&mut self, dot: &Value, pos: usize, name: &str, pipe: Option<&Pipe>) -> R<()> {
        let Some(tree) = self.set.trees.get(name) else {
            return go(pos, format!("template {name:?} not defined"));
        };
        if self.depth >= self.limits.max_depth {
            return Err(Fail::Limit(LimitKind::Depth));
        }
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Nil,
        };
        let saved = std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
        self.depth += 1;
        let r = self.walk(&new_dot, tree);
        self.depth -= 1;
        self.vars = saved;
        r.map(|_| ())
    }

    pub(crate) fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = value.clone(),
                    None => return go(pipe.pos, format!("undefined variable: {name}")),
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, cmd: &Cmd, final_: &Option<Value>) -> R<()> {
        if cmd.args.len() > 1 || final_.is_some() {
            return go(cmd.pos, "can't give argument to non-function");
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &Cmd, final_: Option<Value>) -> R<Value> {
        self.step()?;
        let first = &cmd.args[0];
        match &first.kind {
            OpKind::Field(fields) => self.eval_field_chain(dot.clone(), first.pos, fields, &cmd.args, final_),
            OpKind::Chain(node, fields) => {
                let recv = self.eval_chain_base(dot, node)?;
                self.eval_field_chain(recv, first.pos, fields, &cmd.args, final_)
            }
            OpKind::Ident(name) => self.eval_function(dot, name, first.pos, &cmd.args, final_),
            OpKind::Pipe(p) => {
                self.not_a_function(cmd, &final_)?;
                self.eval_pipeline(dot, p)
            }
            OpKind::Variable(name, fields) => {
                let v = self.var_value(first.pos, name)?;
                if fields.is_empty() {
                    self.not_a_function(cmd, &final_)?;
                    return Ok(v);
                }
                self.eval_field_chain(v, first.pos, fields, &cmd.args, final_)
            }
            OpKind::Bool(b) => {
                self.not_a_function(cmd, &final_)?;
                Ok(Value::Bool(*b))
            }
            OpKind::Dot => {
                self.not_a_function(cmd, &final_)?;
                Ok(dot.clone())
            }
            OpKind::Nil => go(first.pos, "nil is not a command"),
            OpKind::Number(n) => {
                self.not_a_function(cmd, &final_)?;
                ideal_constant(first.pos, n)
            }
            OpKind::Str(s) => {
                self.not_a_function(cmd, &final_)?;
                Ok(Value::str(s.as_slice()))
            }
        }
    }

    fn eval_chain_base(&mut self, dot: &Value, node: &Operand) -> R<Value> {
        if let OpKind::Nil = node.kind {
            return go(node.pos, "indirection through explicit nil");
        }
        self.eval_arg(dot, Param::Any, node)
    }

    fn var_value(&self, pos: usize, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => go(pos, format!("undefined variable: {name}")),
        }
    }

    fn eval_field_chain(
        &mut self,
        mut recv: Value,
        pos: usize,
        fields: &[String],
        args: &[Operand],
        final_: Option<Value>,
    ) -> R<Value> {
        let n = fields.len();
        for (i, f) in fields.iter().enumerate() {
            let has_args = i == n - 1 && (args.len() > 1 || final_.is_some());
            recv = eval_field(pos, f, has_args, &recv)?;
        }
        Ok(recv)
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        pos: usize,
        args: &[Operand],
        final_: Option<Value>,
    ) -> R<Value> {
        let Some(sig) = funcs::signature(name) else {
            return Err(Fail::Unsupported(pos, name.to_string(), funcs::refusal(name)));
        };
        let args = &args[1..];
        let num_in = args.len() + usize::from(final_.is_some());
        let fixed = sig.fixed;
        match sig.variadic {
            Some(_) if num_in < fixed.len() => {
                return go(pos, format!("wrong number of args for {name}: want at least {}", fixed.len()));
            }
            None if num_in != fixed.len() => {
                return go(pos, format!("wrong number of args for {name}: want {}", fixed.len()));
            }
            _ => {}
        }
        if name == "and" || name == "or" {
            let want = name == "or";
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, Param::Val, a)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = validate(pos, f, Param::Val)?;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            let p = fixed.get(i).copied().or(sig.variadic).unwrap_or(Param::Any);
            argv.push(self.eval_arg(dot, p, a)?);
        }
        if let Some(f) = final_ {
            let p = match sig.variadic {
                Some(v) if num_in > fixed.len() => v,
                _ => fixed[num_in - 1],
            };
            argv.push(validate(pos, f, p)?);
        }
        self.step()?;
        // Functions read their arguments in full (contains, eq, upper ...): their size counts towards the steps.
        for v in &argv {
            funcs::charge_size(self, v).map_err(|_| Fail::Limit(LimitKind::Steps))?;
        }
        match funcs::call(self, name, argv) {
            Ok(v) => Ok(v),
            Err(CallError::Failed(why)) => go(pos, format!("error calling {name}: {why}")),
            Err(CallError::Unsupported(why)) => Err(Fail::Unsupported(pos, name.to_string(), why)),
            Err(CallError::Limit(l)) => Err(Fail::Limit(l)),
        }
    }

    fn eval_arg(&mut self, dot: &Value, p: Param, node: &Operand) -> R<Value> {
        let pos = node.pos;
        match &node.kind {
            OpKind::Dot => validate(pos, dot.clone(), p),
            OpKind::Nil => {
                if p.can_be_nil() {
                    Ok(p.zero())
                } else {
                    go(pos, format!("cannot assign nil to {}", p.go_type()))
                }
            }
            OpKind::Field(fields) => {
                let v = self.eval_field_chain(dot.clone(), pos, fields, std::slice::from_ref(node), None)?;
                validate(pos, v, p)
            }
            OpKind::Variable(name, fields) => {
                let v = self.var_value(pos, name)?;
                let v = self.eval_field_chain(v, pos, fields, std::slice::from_ref(node), None)?;
                validate(pos, v, p)
            }
            OpKind::Pipe(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                validate(pos, v, p)
            }
            OpKind::Ident(name) => {
                let v = self.eval_function(dot, name, pos, std::slice::from_ref(node), None)?;
                validate(pos, v, p)
            }
            OpKind::Chain(base, fields) => {
                let recv = self.eval_chain_base(dot, base)?;
                let v = self.eval_field_chain(recv, pos, fields, std::slice::from_ref(node), None)?;
                validate(pos, v, p)
            }
            OpKind::Bool(b) => match p {
                Param::Bool | Param::Any | Param::Val => Ok(Value::Bool(*b)),
                _ => go(pos, format!("expected {}; found bool", p.go_type())),
            },
            OpKind::Number(n) => match p {
                Param::Int => match n.int {
                    Some(i) if !n.is_complex => Ok(Value::Int(i, IntTy::Int)),
                    _ => go(pos, "expected integer"),
                },
                Param::Float => match n.float {
                    Some(f) if !n.is_complex => Ok(Value::Float(f)),
                    _ => go(pos, "expected float"),
                },
                Param::Any | Param::Val => ideal_constant(pos, n),
                _ => go(pos, format!("expected {}; found number", p.go_type())),
            },
            OpKind::Str(s) => match p {
                Param::Str | Param::Any | Param::Val => Ok(Value::str(s.as_slice())),
                _ => go(pos, format!("expected {}; found string", p.go_type())),
            },
        }
    }
}

/// Go's `evalField` on the value kinds templates have: maps are indexed by key, everything else has no fields.
fn eval_field(pos: usize, name: &str, has_args: bool, recv: &Value) -> R<Value> {
    match recv {
        Value::Nil => Ok(Value::Nil),
        Value::Map(m, _) => {
            if has_args {
                return go(pos, format!("{name} is not a method but has arguments"));
            }
            Ok(m.borrow().get(name.as_bytes()).cloned().unwrap_or(Value::Nil))
        }
        Value::Time(..) => {
            Err(Fail::Unsupported(pos, format!(".{name}"), "methods of time.Time are not reproduced"))
        }
        other => go(pos, format!("can't evaluate field {name} in type {}", other.type_name())),
    }
}

/// Go's `idealConstant`: an untyped number passed where any type is accepted.
fn ideal_constant(pos: usize, n: &crate::parse::Number) -> R<Value> {
    if n.is_complex {
        return Err(Fail::Unsupported(pos, "complex constant".into(), "complex numbers are not reproduced"));
    }
    if n.is_float_literal
        && let Some(f) = n.float
    {
        return Ok(Value::Float(f));
    }
    match (n.int, n.float) {
        (Some(i), _) => Ok(Value::int(i)),
        (None, Some(_)) => go(pos, "integer overflow in constant"),
        _ => go(pos, "can't handle number"),
    }
}

/// Go's `validateType`: whether a computed value may be passed as parameter type `p`.
pub(crate) fn validate(pos: usize, v: Value, p: Param) -> R<Value> {
    if let Value::Nil = v {
        if p.can_be_nil() {
            return Ok(p.zero());
        }
        return go(pos, format!("invalid value; expected {}", p.go_type()));
    }
    let ok = match p {
        Param::Any | Param::Val => true,
        Param::Str => matches!(v, Value::Str(_)),
        Param::Int => matches!(v, Value::Int(_, IntTy::Int)),
        Param::Float => matches!(v, Value::Float(_)),
        Param::Bool => matches!(v, Value::Bool(_)),
        Param::Map => matches!(v, Value::Map(_, ElemTy::Any)),
    };
    if !ok {
        return go(pos, format!("wrong type for value; expected {}; got {}", p.go_type(), v.type_name()));
    }
    Ok(v)
}

fn position(source: &str, pos: usize) -> (usize, usize, String) {
    let pos = pos.min(source.len());
    let before = &source.as_bytes()[..pos];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let rest = &source[pos..];
    let end = rest.find("}}").unwrap_or(rest.len()).min(80);
    let mut end = end;
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    (line, pos - line_start, rest[..end].trim_end().to_string())
}

/// Executes the parsed template `name` over the data map.
pub(crate) fn execute(
    name: &str,
    source: &str,
    set: &Set,
    data: &BTreeMap<String, Vec<u8>>,
    limits: &Limits,
) -> Result<Vec<u8>, Error> {
    let map: BTreeMap<Vec<u8>, Value> =
        data.iter().map(|(k, v)| (k.as_bytes().to_vec(), Value::str(v.as_slice()))).collect();
    let dot = Value::Map(Rc::new(RefCell::new(map)), ElemTy::Str);
    let mut st =
        State { set, limits, out: Vec::new(), steps: 0, vars: vec![("$".into(), dot.clone())], depth: 0 };
    let Some(root) = set.trees.get(name) else {
        return Err(Error::Exec {
            name: name.into(),
            line: 1,
            col: 0,
            action: String::new(),
            message: "incomplete or empty template".into(),
        });
    };
    match st.walk(&dot, root) {
        Ok(_) => Ok(st.out),
        Err(Fail::Go(pos, message)) => {
            let (line, col, action) = position(source, pos);
            Err(Error::Exec { name: name.into(), line, col, action, message })
        }
        Err(Fail::Unsupported(pos, function, reason)) => {
            let (line, col, _) = position(source, pos);
            Err(Error::Unsupported { name: name.into(), line, col, function, reason })
        }
        Err(Fail::Limit(limit)) => Err(Error::Limit { name: name.into(), limit }),
    }
}
