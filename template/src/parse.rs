//! Lexer and parser: Go 1.19's `text/template/parse`, item for item, so that what Go rejects we reject and trim
//! markers, comments and literals mean exactly what they mean there. Nodes keep byte offsets into the source for
//! error positions; nothing here sees data values.

use std::collections::BTreeMap;

use crate::{Error, LimitKind, Limits};

/// A parsed template and the templates it defines (`define`/`block`), by name.
pub(crate) struct Set {
    pub(crate) trees: BTreeMap<String, List>,
}

pub(crate) type List = Vec<Node>;

pub(crate) enum Node {
    Text(Vec<u8>),
    Action(Pipe),
    If(Control),
    Range(Control),
    With(Control),
    Template { pos: usize, name: String, pipe: Option<Pipe> },
    Break,
    Continue,
}

pub(crate) struct Control {
    pub(crate) pipe: Pipe,
    pub(crate) list: List,
    pub(crate) else_list: Option<List>,
}

pub(crate) struct Pipe {
    pub(crate) pos: usize,
    pub(crate) is_assign: bool,
    pub(crate) decl: Vec<String>,
    pub(crate) cmds: Vec<Cmd>,
}

pub(crate) struct Cmd {
    pub(crate) pos: usize,
    pub(crate) args: Vec<Operand>,
}

pub(crate) struct Operand {
    pub(crate) pos: usize,
    /// Source text of the operand, for error messages.
    pub(crate) end: usize,
    pub(crate) kind: OpKind,
}

pub(crate) enum OpKind {
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(Vec<u8>),
    /// `.a.b`
    Field(Vec<String>),
    /// `$x.a.b`: the variable name (with `$`) and the fields.
    Variable(String, Vec<String>),
    Ident(String),
    /// `(pipe).a.b` or `fn.a` (Go's ChainNode).
    Chain(Box<Operand>, Vec<String>),
    Pipe(Box<Pipe>),
}

/// A numeric constant, with Go's `NumberNode` flags.
#[derive(Clone, Debug)]
pub(crate) struct Number {
    pub(crate) int: Option<i64>,
    pub(crate) float: Option<f64>,
    /// An untyped constant that Go turns into float64 (rather than int) when passed as `interface{}`.
    pub(crate) is_float_literal: bool,
    pub(crate) is_complex: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Assign,
    Declare,
    Pipe,
    Str,
    RawStr,
    Char,
    CharConst,
    Number,
    Variable,
    Field,
    Dot,
    Ident,
    Bool,
    LeftParen,
    RightParen,
    Eof,
    // Keywords.
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

#[derive(Clone, Debug)]
struct Item {
    tok: Tok,
    pos: usize,
    end: usize,
    /// Text items carry their (trimmed) bytes; others are `src[pos..end]`.
    text: Option<Vec<u8>>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || crate::gostr::is_letter(c) || crate::gostr::is_digit(c)
}

fn has_left_trim(s: &[u8]) -> bool {
    s.len() >= 2 && s[0] == b'-' && is_space(s[1])
}

fn has_right_trim(s: &[u8]) -> bool {
    s.len() >= 2 && is_space(s[0]) && s[1] == b'-'
}

/// Go's lexer, run to completion. A lexical error is a parse error at its line.
struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    start: usize,
    items: Vec<Item>,
    paren_depth: i32,
}

type LexResult<T> = Result<T, (usize, String)>;

impl<'a> Lexer<'a> {
    fn emit(&mut self, tok: Tok) {
        self.items.push(Item { tok, pos: self.start, end: self.pos, text: None });
        self.start = self.pos;
    }

    fn peek_char(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn err<T>(&self, msg: impl Into<String>) -> LexResult<T> {
        Err((self.pos, msg.into()))
    }

    fn run(mut self) -> LexResult<Vec<Item>> {
        loop {
            // Text up to the next "{{".
            let rest = &self.src[self.pos..];
            let Some(x) = rest.find("{{") else {
                self.pos = self.src.len();
                if self.pos > self.start {
                    let text = self.b[self.start..self.pos].to_vec();
                    self.items.push(Item {
                        tok: Tok::Text,
                        pos: self.start,
                        end: self.pos,
                        text: Some(text),
                    });
                }
                self.start = self.pos;
                self.emit(Tok::Eof);
                return Ok(self.items);
            };
            self.pos += x;
            let delim_end = self.pos + 2;
            let mut text_end = self.pos;
            if has_left_trim(&self.b[delim_end..]) {
                while text_end > self.start && is_space(self.b[text_end - 1]) {
                    text_end -= 1;
                }
            }
            if text_end > self.start {
                let text = self.b[self.start..text_end].to_vec();
                self.items.push(Item { tok: Tok::Text, pos: self.start, end: text_end, text: Some(text) });
            }
            self.start = self.pos;
            self.left_delim()?;
        }
    }

    fn left_delim(&mut self) -> LexResult<()> {
        self.pos += 2;
        let trim = has_left_trim(&self.b[self.pos..]);
        let after = if trim { 2 } else { 0 };
        if self.b[self.pos + after..].starts_with(b"/*") {
            self.pos += after + 2;
            let Some(x) = self.src[self.pos..].find("*/") else { return self.err("unclosed comment") };
            self.pos += x + 2;
            let (delim, trim_right) = self.at_right_delim();
            if !delim {
                return self.err("comment ends before closing delimiter");
            }
            self.pos += if trim_right { 4 } else { 2 };
            if trim_right {
                self.skip_left_trim();
            }
            self.start = self.pos;
            return Ok(());
        }
        self.emit(Tok::LeftDelim);
        self.pos += after;
        self.start = self.pos;
        self.paren_depth = 0;
        self.inside_action()
    }

    fn skip_left_trim(&mut self) {
        while self.pos < self.b.len() && is_space(self.b[self.pos]) {
            self.pos += 1;
        }
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = &self.b[self.pos..];
        if has_right_trim(rest) && rest[2..].starts_with(b"}}") {
            return (true, true);
        }
        (rest.starts_with(b"}}"), false)
    }

    fn at_terminator(&self) -> bool {
        match self.b.get(self.pos) {
            None => true,
            Some(&c) => is_space(c) || matches!(c, b'.' | b',' | b'|' | b':' | b')' | b'(' | b'}'),
        }
    }

    fn inside_action(&mut self) -> LexResult<()> {
        loop {
            let (delim, trim) = self.at_right_delim();
            if delim {
                if self.paren_depth != 0 {
                    return self.err("unclosed left paren");
                }
                if trim {
                    self.pos += 2;
                    self.start = self.pos;
                }
                self.pos += 2;
                self.emit(Tok::RightDelim);
                if trim {
                    self.skip_left_trim();
                    self.start = self.pos;
                }
                return Ok(());
            }
            let Some(c) = self.next_char() else { return self.err("unclosed action") };
            match c {
                c if c.is_ascii() && is_space(c as u8) => self.space(),
                '=' => self.emit(Tok::Assign),
                ':' => {
                    if self.next_char() != Some('=') {
                        return self.err("expected :=");
                    }
                    self.emit(Tok::Declare)
                }
                '|' => self.emit(Tok::Pipe),
                '"' => self.quote(b'"', Tok::Str, "unterminated quoted string")?,
                '\'' => self.quote(b'\'', Tok::CharConst, "unterminated character constant")?,
                '`' => {
                    let Some(x) = self.src[self.pos..].find('`') else {
                        return self.err("unterminated raw quoted string");
                    };
                    self.pos += x + 1;
                    self.emit(Tok::RawStr)
                }
                '$' => self.field_or_variable(Tok::Variable)?,
                '.' if self.b.get(self.pos).is_some_and(|d| !d.is_ascii_digit()) => {
                    self.field_or_variable(Tok::Field)?
                }
                '.' | '+' | '-' | '0'..='9' => {
                    self.pos -= 1;
                    self.number()?
                }
                c if is_alnum(c) => {
                    self.pos -= c.len_utf8();
                    self.identifier()?
                }
                '(' => {
                    self.emit(Tok::LeftParen);
                    self.paren_depth += 1;
                }
                ')' => {
                    self.emit(Tok::RightParen);
                    self.paren_depth -= 1;
                    if self.paren_depth < 0 {
                        return self.err("unexpected right paren");
                    }
                }
                c if c.is_ascii() && !c.is_ascii_control() => self.emit(Tok::Char),
                _ => return self.err("unrecognized character in action"),
            }
        }
    }

    fn space(&mut self) {
        let mut n = 1;
        while self.pos < self.b.len() && is_space(self.b[self.pos]) {
            self.pos += 1;
            n += 1;
        }
        // A space before "-}}" belongs to the delimiter.
        if has_right_trim(&self.b[self.pos - 1..]) && self.b[self.pos + 1..].starts_with(b"}}") {
            self.pos -= 1;
            if n == 1 {
                return;
            }
        }
        self.emit(Tok::Space);
    }

    fn quote(&mut self, q: u8, tok: Tok, msg: &str) -> LexResult<()> {
        loop {
            match self.b.get(self.pos) {
                None | Some(b'\n') => return self.err(msg),
                Some(b'\\') => {
                    self.pos += 1;
                    match self.b.get(self.pos) {
                        None | Some(b'\n') => return self.err(msg),
                        Some(_) => {
                            let _ = self.next_char();
                        }
                    }
                }
                Some(&c) if c == q => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {
                    let _ = self.next_char();
                }
            }
        }
        self.emit(tok);
        Ok(())
    }

    fn field_or_variable(&mut self, tok: Tok) -> LexResult<()> {
        if self.at_terminator() {
            self.emit(if tok == Tok::Variable { Tok::Variable } else { Tok::Dot });
            return Ok(());
        }
        while let Some(c) = self.peek_char() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            return self.err("bad character");
        }
        self.emit(tok);
        Ok(())
    }

    fn accept(&mut self, set: &[u8]) -> bool {
        if self.b.get(self.pos).is_some_and(|c| set.contains(c)) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn accept_run(&mut self, set: &[u8]) {
        while self.accept(set) {}
    }

    fn number(&mut self) -> LexResult<()> {
        self.accept(b"+-");
        let mut digits: &[u8] = b"0123456789_";
        if self.accept(b"0") {
            if self.accept(b"xX") {
                digits = b"0123456789abcdefABCDEF_";
            } else if self.accept(b"oO") {
                digits = b"01234567_";
            } else if self.accept(b"bB") {
                digits = b"01_";
            }
        }
        self.accept_run(digits);
        if self.accept(b".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept(b"eE") {
            self.accept(b"+-");
            self.accept_run(b"0123456789_");
        }
        if digits.len() == 23 && self.accept(b"pP") {
            self.accept(b"+-");
            self.accept_run(b"0123456789_");
        }
        self.accept(b"i");
        if self.peek_char().is_some_and(is_alnum) {
            return self.err("bad number syntax");
        }
        self.emit(Tok::Number);
        Ok(())
    }

    fn identifier(&mut self) -> LexResult<()> {
        while let Some(c) = self.peek_char() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            return self.err("bad character");
        }
        let tok = match &self.src[self.start..self.pos] {
            "block" => Tok::Block,
            "break" => Tok::Break,
            "continue" => Tok::Continue,
            "define" => Tok::Define,
            "else" => Tok::Else,
            "end" => Tok::End,
            "if" => Tok::If,
            "nil" => Tok::Nil,
            "range" => Tok::Range,
            "template" => Tok::Template,
            "with" => Tok::With,
            "true" | "false" => Tok::Bool,
            _ => Tok::Ident,
        };
        self.emit(tok);
        Ok(())
    }
}

/// What `itemList` stopped at.
enum Stop {
    End,
    Else { pending_if: bool },
}

struct Parser<'a> {
    name: &'a str,
    src: &'a str,
    items: Vec<Item>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    max_depth: usize,
    trees: BTreeMap<String, List>,
}

type PResult<T> = Result<T, Error>;

impl<'a> Parser<'a> {
    fn line_of(&self, pos: usize) -> usize {
        1 + self.src.as_bytes()[..pos.min(self.src.len())].iter().filter(|&&b| b == b'\n').count()
    }

    fn err<T>(&self, pos: usize, message: impl Into<String>) -> PResult<T> {
        Err(Error::Parse { name: self.name.to_string(), line: self.line_of(pos), message: message.into() })
    }

    fn text(&self, it: &Item) -> &'a str {
        &self.src[it.pos..it.end]
    }

    fn next(&mut self) -> Item {
        // Invariant: the lexer always ends with Eof, and nothing reads past it.
        let it = self.items[self.i.min(self.items.len() - 1)].clone();
        if self.i < self.items.len() - 1 {
            self.i += 1;
        }
        it
    }

    fn peek(&self) -> &Item {
        &self.items[self.i.min(self.items.len() - 1)]
    }

    fn skip_space(&mut self) {
        while self.peek().tok == Tok::Space {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> Item {
        self.skip_space();
        self.next()
    }

    fn peek_non_space(&mut self) -> Item {
        self.skip_space();
        self.peek().clone()
    }

    fn unexpected<T>(&self, it: &Item, context: &str) -> PResult<T> {
        let shown = if it.tok == Tok::Eof { "EOF".to_string() } else { format!("{:?}", self.text(it)) };
        self.err(it.pos, format!("unexpected {shown} in {context}"))
    }

    fn expect(&mut self, tok: Tok, context: &str) -> PResult<Item> {
        let it = self.next_non_space();
        if it.tok != tok {
            return self.unexpected(&it, context);
        }
        Ok(it)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(Error::Limit { name: self.name.to_string(), limit: LimitKind::Depth });
        }
        Ok(())
    }

    fn parse_top(&mut self) -> PResult<List> {
        let mut root = Vec::new();
        loop {
            if self.peek().tok == Tok::Eof {
                return Ok(root);
            }
            if self.peek().tok == Tok::LeftDelim {
                let save = self.i;
                self.next();
                if self.next_non_space().tok == Tok::Define {
                    self.definition()?;
                    continue;
                }
                self.i = save;
            }
            match self.text_or_action()? {
                Ok(node) => root.push(node),
                Err((pos, stop)) => {
                    let what = match stop {
                        Stop::End => "{{end}}",
                        Stop::Else { .. } => "{{else}}",
                    };
                    return self.err(pos, format!("unexpected {what}"));
                }
            }
        }
    }

    /// Adds a named tree as Go's `(*Tree).add` does: an empty redefinition never replaces, two non-empty ones clash.
    fn add(&mut self, name: String, list: List, pos: usize) -> PResult<()> {
        match self.trees.get(&name) {
            Some(old) if !is_empty_tree(old) && !is_empty_tree(&list) => {
                self.err(pos, format!("template: multiple definition of template {name:?}"))
            }
            Some(old) if !is_empty_tree(old) => Ok(()),
            _ => {
                self.trees.insert(name, list);
                Ok(())
            }
        }
    }

    fn with_fresh_scope<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let range_depth = std::mem::replace(&mut self.range_depth, 0);
        let r = f(self);
        self.vars = vars;
        self.range_depth = range_depth;
        r
    }

    fn definition(&mut self) -> PResult<()> {
        let it = self.next_non_space();
        let name = match it.tok {
            Tok::Str | Tok::RawStr => self.unquote_str(&it)?,
            _ => return self.unexpected(&it, "define clause"),
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        self.expect(Tok::RightDelim, "define clause")?;
        let list = self.with_fresh_scope(|p| {
            let (list, stop) = p.item_list()?;
            if !matches!(stop, Stop::End) {
                return p.err(it.pos, "unexpected {{else}} in define clause");
            }
            Ok(list)
        })?;
        self.add(name, list, it.pos)
    }

    /// `Ok(Ok(node))`, or `Ok(Err(stop))` at `{{end}}`/`{{else}}`.
    fn text_or_action(&mut self) -> PResult<Result<Node, (usize, Stop)>> {
        let it = self.next_non_space();
        match it.tok {
            Tok::Text => Ok(Ok(Node::Text(it.text.unwrap_or_default()))),
            Tok::LeftDelim => self.action(),
            _ => self.unexpected(&it, "input"),
        }
    }

    fn item_list(&mut self) -> PResult<(List, Stop)> {
        let mut list = Vec::new();
        loop {
            if self.peek_non_space().tok == Tok::Eof {
                let pos = self.peek().pos;
                return self.err(pos, "unexpected EOF");
            }
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err((_, stop)) => return Ok((list, stop)),
            }
        }
    }

    fn action(&mut self) -> PResult<Result<Node, (usize, Stop)>> {
        let it = self.next_non_space();
        let node = match it.tok {
            Tok::Block => self.block(&it)?,
            Tok::Break | Tok::Continue => {
                let t = self.next_non_space();
                if t.tok != Tok::RightDelim {
                    return self.unexpected(&t, "in {{break}}");
                }
                if self.range_depth == 0 {
                    let what = if it.tok == Tok::Break { "break" } else { "continue" };
                    return self.err(it.pos, format!("{{{{{what}}}}} outside {{{{range}}}}"));
                }
                if it.tok == Tok::Break { Node::Break } else { Node::Continue }
            }
            Tok::Else => {
                if self.peek_non_space().tok == Tok::If {
                    return Ok(Err((it.pos, Stop::Else { pending_if: true })));
                }
                self.expect(Tok::RightDelim, "else")?;
                return Ok(Err((it.pos, Stop::Else { pending_if: false })));
            }
            Tok::End => {
                self.expect(Tok::RightDelim, "end")?;
                return Ok(Err((it.pos, Stop::End)));
            }
            Tok::If => Node::If(self.control(true, "if")?),
            Tok::Range => Node::Range(self.control(false, "range")?),
            Tok::With => Node::With(self.control(false, "with")?),
            Tok::Template => {
                let name_it = self.next_non_space();
                let name = self.template_name(&name_it, "template clause")?;
                let pipe = if self.next_non_space().tok == Tok::RightDelim {
                    None
                } else {
                    self.i -= 1;
                    Some(self.pipeline("template clause", Tok::RightDelim)?)
                };
                Node::Template { pos: name_it.pos, name, pipe }
            }
            _ => {
                self.i -= 1;
                Node::Action(self.pipeline("command", Tok::RightDelim)?)
            }
        };
        Ok(Ok(node))
    }

    fn template_name(&mut self, it: &Item, context: &str) -> PResult<String> {
        match it.tok {
            Tok::Str | Tok::RawStr => Ok(String::from_utf8_lossy(&self.unquote_str(it)?).into_owned()),
            _ => self.unexpected(it, context),
        }
    }

    fn block(&mut self, it: &Item) -> PResult<Node> {
        let name_it = self.next_non_space();
        let name = self.template_name(&name_it, "block clause")?;
        let pipe = self.pipeline("block clause", Tok::RightDelim)?;
        let list = self.with_fresh_scope(|p| {
            let (list, stop) = p.item_list()?;
            if !matches!(stop, Stop::End) {
                return p.err(it.pos, "unexpected {{else}} in block clause");
            }
            Ok(list)
        })?;
        self.add(name.clone(), list, it.pos)?;
        Ok(Node::Template { pos: name_it.pos, name, pipe: Some(pipe) })
    }

    fn control(&mut self, allow_else_if: bool, context: &str) -> PResult<Control> {
        let mark = self.vars.len();
        self.enter()?;
        let r = self.control_inner(allow_else_if, context);
        self.depth -= 1;
        self.vars.truncate(mark);
        r
    }

    fn control_inner(&mut self, allow_else_if: bool, context: &str) -> PResult<Control> {
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, stop) = r?;
        let else_list = match stop {
            Stop::End => None,
            Stop::Else { pending_if } => {
                if allow_else_if && pending_if {
                    self.next_non_space(); // the "if"
                    Some(vec![Node::If(self.control(true, "if")?)])
                } else {
                    let (l, stop) = self.item_list()?;
                    if !matches!(stop, Stop::End) {
                        let pos = self.peek().pos;
                        return self.err(pos, "expected end; found {{else}}");
                    }
                    Some(l)
                }
            }
        };
        Ok(Control { pipe, list, else_list })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> PResult<Pipe> {
        let start = self.peek_non_space().pos;
        let mut pipe = Pipe { pos: start, is_assign: false, decl: Vec::new(), cmds: Vec::new() };
        'decls: loop {
            let v = self.peek_non_space();
            if v.tok != Tok::Variable {
                break;
            }
            let save = self.i;
            self.next();
            let next = self.peek_non_space();
            match next.tok {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = next.tok == Tok::Assign;
                    self.next_non_space();
                    let name = self.text(&v).to_string();
                    pipe.decl.push(name.clone());
                    self.vars.push(name);
                    break 'decls;
                }
                Tok::Char if self.text(&next) == "," => {
                    self.next_non_space();
                    let name = self.text(&v).to_string();
                    pipe.decl.push(name.clone());
                    self.vars.push(name);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().tok {
                            Tok::Variable | Tok::RightDelim | Tok::RightParen => continue 'decls,
                            _ => return self.err(next.pos, "range can only initialize variables"),
                        }
                    }
                    return self.err(next.pos, format!("too many declarations in {context}"));
                }
                _ => {
                    // "$x" used as an operand: put it back (Go's backup2/backup3).
                    self.i = save;
                    break 'decls;
                }
            }
        }
        loop {
            let it = self.next_non_space();
            match it.tok {
                t if t == end => {
                    if pipe.cmds.is_empty() {
                        return self.err(it.pos, format!("missing value for {context}"));
                    }
                    for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                        if matches!(
                            c.args[0].kind,
                            OpKind::Bool(_) | OpKind::Dot | OpKind::Nil | OpKind::Number(_) | OpKind::Str(_)
                        ) {
                            return self
                                .err(c.pos, format!("non executable command in pipeline stage {}", i + 1));
                        }
                    }
                    return Ok(pipe);
                }
                Tok::Bool
                | Tok::CharConst
                | Tok::Dot
                | Tok::Field
                | Tok::Ident
                | Tok::Number
                | Tok::Nil
                | Tok::RawStr
                | Tok::Str
                | Tok::Variable
                | Tok::LeftParen => {
                    self.i -= 1;
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&it, context),
            }
        }
    }

    fn command(&mut self) -> PResult<Cmd> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.skip_space();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let it = self.next();
            match it.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.i -= 1,
                Tok::Pipe => {}
                _ => return self.unexpected(&it, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.err(pos, "empty command");
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> PResult<Option<Operand>> {
        let Some(term) = self.term()? else { return Ok(None) };
        if self.peek().tok != Tok::Field {
            return Ok(Some(term));
        }
        let mut fields = Vec::new();
        let mut end = term.end;
        while self.peek().tok == Tok::Field {
            let f = self.next();
            end = f.end;
            fields.extend(self.text(&f)[1..].split('.').map(str::to_string));
        }
        let pos = term.pos;
        let kind = match term.kind {
            OpKind::Field(mut base) => {
                base.extend(fields);
                OpKind::Field(base)
            }
            OpKind::Variable(name, mut base) => {
                base.extend(fields);
                OpKind::Variable(name, base)
            }
            OpKind::Bool(_) | OpKind::Str(_) | OpKind::Number(_) | OpKind::Nil | OpKind::Dot => {
                return self.err(pos, format!("unexpected . after term {:?}", &self.src[pos..term.end]));
            }
            other => OpKind::Chain(Box::new(Operand { pos, end: term.end, kind: other }), fields),
        };
        Ok(Some(Operand { pos, end, kind }))
    }

    fn term(&mut self) -> PResult<Option<Operand>> {
        let it = self.next_non_space();
        let text = self.text(&it);
        let kind = match it.tok {
            Tok::Ident => {
                if !crate::funcs::is_defined(text) {
                    return self.err(it.pos, format!("function {text:?} not defined"));
                }
                OpKind::Ident(text.to_string())
            }
            Tok::Dot => OpKind::Dot,
            Tok::Nil => OpKind::Nil,
            Tok::Variable => {
                if !self.vars.iter().any(|v| v == text) {
                    return self.err(it.pos, format!("undefined variable {text:?}"));
                }
                OpKind::Variable(text.to_string(), Vec::new())
            }
            Tok::Field => OpKind::Field(text[1..].split('.').map(str::to_string).collect()),
            Tok::Bool => OpKind::Bool(text == "true"),
            Tok::CharConst => OpKind::Number(self.char_const(&it)?),
            Tok::Number => match parse_number(text) {
                Some(n) => OpKind::Number(n),
                None => return self.err(it.pos, format!("illegal number syntax: {text:?}")),
            },
            Tok::LeftParen => {
                self.enter()?;
                let p = self.pipeline("parenthesized pipeline", Tok::RightParen);
                self.depth -= 1;
                let p = p?;
                let end = self.items[self.i.saturating_sub(1)].end;
                return Ok(Some(Operand { pos: it.pos, end, kind: OpKind::Pipe(Box::new(p)) }));
            }
            Tok::Str | Tok::RawStr => OpKind::Str(self.unquote_str(&it)?),
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        };
        Ok(Some(Operand { pos: it.pos, end: it.end, kind }))
    }

    fn unquote_str(&self, it: &Item) -> PResult<Vec<u8>> {
        let t = self.text(it);
        if it.tok == Tok::RawStr {
            // Go's Unquote drops carriage returns from raw strings.
            return Ok(t[1..t.len() - 1].bytes().filter(|&b| b != b'\r').collect());
        }
        crate::gostr::unquote(&t[1..t.len() - 1], b'"')
            .ok_or(())
            .or_else(|()| self.err(it.pos, "invalid syntax"))
    }

    fn char_const(&self, it: &Item) -> PResult<Number> {
        let t = self.text(it);
        let inner = &t[1..t.len() - 1];
        let r = crate::gostr::unquote_char(inner);
        match r {
            Some(c) => {
                let v = i64::from(c);
                Ok(Number { int: Some(v), float: Some(v as f64), is_float_literal: false, is_complex: false })
            }
            None => self.err(it.pos, format!("malformed character constant: {t}")),
        }
    }
}

fn is_empty_tree(list: &List) -> bool {
    list.iter().all(|n| match n {
        Node::Text(t) => t.iter().all(|&b| b.is_ascii_whitespace() || b == 0x0b),
        _ => false,
    })
}

/// Go's `underscoreOK`: underscores only between digits, or between a base prefix and a digit.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    if !b.is_empty() && (b[0] == b'-' || b[0] == b'+') {
        i = 1;
    }
    let mut hex = false;
    if b.len() - i >= 2 && b[i] == b'0' && matches!(b[i + 1] | 0x20, b'b' | b'o' | b'x') {
        hex = b[i + 1] | 0x20 == b'x';
        i += 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && (c | 0x20).is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// strconv.ParseUint(s, 0, 64): no sign allowed.
fn parse_uint(s: &str) -> Option<u64> {
    if s.starts_with(['+', '-']) {
        return None;
    }
    match parse_int(s) {
        Some(v) if v >= 0 => Some(v as u64),
        Some(_) => None,
        None => parse_magnitude(s),
    }
}

fn parse_magnitude(s: &str) -> Option<u64> {
    let (radix, digits) = split_radix(s);
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(&digits, radix).ok()
}

fn split_radix(body: &str) -> (u32, &str) {
    if let Some(r) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        (8, r)
    } else if let Some(r) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        (2, r)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    }
}

/// strconv.ParseInt(s, 0, 64).
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let mag = parse_magnitude(body)?;
    if neg {
        if mag <= 1 << 63 { Some((mag as i64).wrapping_neg()) } else { None }
    } else {
        i64::try_from(mag).ok()
    }
}

/// strconv.ParseFloat(s, 64) for the forms the lexer produces (decimal and hex mantissas, underscores).
fn parse_float(s: &str) -> Option<f64> {
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let t: String = s.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, &t[..]),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        parse_hex_float(h)?
    } else {
        if body.starts_with(['0']) && body.len() > 1 && body[1..].starts_with(['o', 'O', 'b', 'B']) {
            return None;
        }
        if !body.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')) {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    if v.is_infinite() {
        return None; // Go reports a range error for overflowing constants.
    }
    Some(if neg { -v } else { v })
}

fn parse_hex_float(h: &str) -> Option<f64> {
    let (mant, exp) = match h.find(['p', 'P']) {
        Some(i) => (&h[..i], h[i + 1..].parse::<i32>().ok()?),
        None => (h, 0), // Go requires the p exponent for hex floats with a dot; plain hex is an integer.
    };
    if !h.contains(['p', 'P']) && mant.contains('.') {
        return None;
    }
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars().chain(frac.chars()) {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let scale = exp - 4 * i32::try_from(frac.len()).ok()?;
    Some(v * 2f64.powi(scale))
}

/// Go's `newNumber` for number items.
fn parse_number(text: &str) -> Option<Number> {
    let mut n = Number { int: None, float: None, is_float_literal: false, is_complex: false };
    if let Some(im) = text.strip_suffix('i') {
        parse_float(im)?;
        n.is_complex = true;
        return Some(n);
    }
    n.int = parse_int(text);
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = parse_uint(text) {
        n.float = Some(u as f64);
    } else {
        let f = parse_float(text)?;
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            // Go: "integer overflow" for what looks like an integer but parsed only as a float ("08", 1e30 digits).
            return None;
        }
        n.float = Some(f);
        if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
            // In i64's range and integral (checked above): the cast is exact.
            #[allow(clippy::cast_possible_truncation)]
            let i = f as i64;
            n.int = Some(i);
        }
    }
    let hex_or_rune =
        text.trim_start_matches(['+', '-']).get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x"));
    n.is_float_literal = n.float.is_some()
        && (!hex_or_rune || text.contains(['p', 'P']))
        && text.contains(['.', 'e', 'E', 'p', 'P']);
    Some(n)
}

/// Parses `source` as template `name` (Go's `template.New(name).Parse(source)`).
pub(crate) fn parse(name: &str, source: &str, limits: &Limits) -> Result<Set, Error> {
    let lexer =
        Lexer { src: source, b: source.as_bytes(), pos: 0, start: 0, items: Vec::new(), paren_depth: 0 };
    let line_of =
        |pos: usize| 1 + source.as_bytes()[..pos.min(source.len())].iter().filter(|&&b| b == b'\n').count();
    let items = lexer.run().map_err(|(pos, message)| Error::Parse {
        name: name.to_string(),
        line: line_of(pos),
        message,
    })?;
    let mut p = Parser {
        name,
        src: source,
        items,
        i: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        depth: 0,
        max_depth: limits.max_depth,
        trees: BTreeMap::new(),
    };
    let root = p.parse_top()?;
    p.add(name.to_string(), root, 0)?;
    Ok(Set { trees: p.trees })
}
