//! A small lossless, editable XML document tree for libvirt domain XML.
//!
//! # Invariant
//!
//! Serializing an unedited [`Document`] with [`Document::to_xml`] reproduces
//! the parsed input **byte-for-byte**. An edit changes only the bytes of the
//! nodes and attributes it touches: untouched start tags, attributes, end
//! tags, text, comments, processing instructions, CDATA sections, the XML
//! declaration, the DOCTYPE, namespace declarations, whitespace (inside tags
//! and between nodes) and the quote style of every attribute are re-emitted
//! verbatim from the original text.
//!
//! # Design
//!
//! The tree is built on the [`xmlparser`] tokenizer, whose tokens carry byte
//! spans into the input. Nodes live in an arena and are addressed by a `Copy`
//! [`NodeId`]. Every element remembers the span of its original start tag, the
//! span of each attribute (name through closing quote) together with the
//! whitespace before it, the raw bytes between its last attribute and `>` /
//! `/>`, and the span of its end tag. An element whose attributes were not
//! edited (and whose `<a/>` versus `<a>…</a>` form did not change) copies its
//! original start tag; an edited one is rebuilt from the original bytes of its
//! untouched attributes plus the new ones. Text, comments, PIs and CDATA are
//! kept as raw spans; everything before and after the root element (XML
//! declaration, DOCTYPE, comments, whitespace) is kept as raw prolog/epilog.
//!
//! # Formatting of edits
//!
//! libvirt indents with two spaces per level. New elements take the
//! indentation of their element siblings (detected from the whitespace text in
//! front of them), or the parent's indentation plus two spaces when the parent
//! has no element children, in which case the parent's end tag goes on its own
//! line at the parent's indentation. A new element is written `<name/>` while
//! empty. New attributes are appended to the start tag using the quote
//! character of the element's other attributes, else the first one in the
//! document, else `'`.
//!
//! When [`Document::remove`] leaves a parent with nothing but whitespace text,
//! that whitespace is dropped too: the parent becomes `<p/>` if it was written
//! self-closing originally (or was created by this module), otherwise `<p></p>`.

use std::fmt;
use std::ops::Range;

use xmlparser::{ElementEnd, Token, Tokenizer};

/// Maximum element nesting depth accepted by [`Document::parse`].
pub const MAX_DEPTH: usize = 256;

/// A location in the parsed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset into the input.
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} (byte {})", self.line, self.col, self.offset)
    }
}

impl Position {
    fn from_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = text[line_start..offset].chars().count() + 1;
        Position { offset, line, col }
    }

    fn from_line_col(text: &str, line: u32, col: u32) -> Position {
        let mut line_start = 0;
        for _ in 1..line.max(1) {
            match text[line_start..].find('\n') {
                Some(i) => line_start += i + 1,
                None => break,
            }
        }
        let offset = text[line_start..]
            .char_indices()
            .nth(col.max(1) as usize - 1)
            .map_or(text.len(), |(i, _)| line_start + i);
        Position::from_offset(text, offset)
    }
}

/// Errors returned by [`Document::parse`].
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// The tokenizer rejected the input; `message` says what was expected.
    #[error("XML syntax error at {pos}: {message}")]
    Syntax { pos: Position, message: String },
    /// The input ended while elements were still open.
    #[error("unexpected end of input at {pos}: expected {expected}")]
    UnexpectedEof { pos: Position, expected: String },
    /// An end tag does not match the innermost open element.
    #[error("mismatched end tag at {pos}: expected </{expected}>, found </{found}>")]
    MismatchedTag {
        pos: Position,
        expected: String,
        found: String,
    },
    /// An end tag appeared while no element was open.
    #[error("unexpected end tag </{found}> at {pos}: expected the root element to be open")]
    UnexpectedEndTag { pos: Position, found: String },
    /// The input contains no element.
    #[error("no root element at {pos}: expected an element such as <domain>")]
    NoRoot { pos: Position },
    /// Elements are nested deeper than [`MAX_DEPTH`].
    #[error("elements nested too deeply at {pos}: expected at most {limit} levels")]
    TooDeep { pos: Position, limit: usize },
    /// The same attribute appears twice in one start tag.
    #[error("duplicate attribute '{name}' at {pos}: expected each attribute at most once")]
    DuplicateAttribute { pos: Position, name: String },
}

/// Handle of a node in a [`Document`]. Only valid for the document it came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct NodeId(usize);

/// Bytes that are either a span of the original input or newly written text.
#[derive(Debug, Clone)]
enum Raw {
    Orig(Range<usize>),
    New(String),
}

#[derive(Debug, Clone)]
struct Attr {
    name: String,
    /// Whitespace before the attribute name.
    lead: Raw,
    /// Original `name='value'` span; `None` once the value was edited.
    orig: Option<Range<usize>>,
    /// Escaped value without quotes.
    value: Raw,
    quote: char,
    removed: bool,
}

#[derive(Debug, Clone)]
struct Elem {
    name: String,
    attrs: Vec<Attr>,
    /// Original start tag `<name ...>` or `<name .../>`; `None` for new elements.
    orig_start: Option<Range<usize>>,
    /// Raw bytes between the last attribute (or the name) and `>` / `/>`.
    tail: Raw,
    /// Original end tag `</name>`.
    orig_end: Option<Range<usize>>,
    /// The original start tag was self-closing (`<name/>`).
    orig_empty: bool,
    /// May be written as `<name/>` while it has no children.
    empty_form: bool,
    attrs_dirty: bool,
    children: Vec<NodeId>,
}

#[derive(Debug, Clone)]
enum Kind {
    Element(Elem),
    /// Character data as written (escaped).
    Text(Raw),
    /// `<![CDATA[...]]>` span.
    Cdata(Range<usize>),
    /// Comment or processing instruction span.
    Misc(Range<usize>),
}

#[derive(Debug, Clone)]
struct Node {
    parent: Option<NodeId>,
    kind: Kind,
}

/// A lossless, editable XML document. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Document {
    text: String,
    nodes: Vec<Node>,
    root: NodeId,
    /// End of the prolog (= start of the root start tag).
    prolog_end: usize,
    /// Start of the epilog (= end of the root element).
    epilog_start: usize,
    /// Quote char used for new attributes when the element has none.
    quote: char,
    newline: &'static str,
}

fn is_ws(s: &str) -> bool {
    s.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Escapes character data: `&`, `<`, `>`.
fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value for the given quote char: `&`, `<`, `>`, the
/// quote, and the whitespace characters attribute normalization would eat.
fn escape_attr(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' if quote == '\'' => out.push_str("&apos;"),
            '"' if quote == '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            _ => out.push(c),
        }
    }
    out
}

/// Resolves the predefined entities and character references; anything else
/// (e.g. DTD-defined entities) is kept literally.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let resolved = rest.find(';').filter(|&j| j <= 12).and_then(|j| {
            let ent = &rest[1..j];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let num = if let Some(hex) = ent.strip_prefix("#x") {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(dec) = ent.strip_prefix('#') {
                        dec.parse::<u32>().ok()
                    } else {
                        None
                    };
                    num.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, j + 1))
        });
        match resolved {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn qname(prefix: &str, local: &str) -> String {
    if prefix.is_empty() {
        local.to_string()
    } else {
        format!("{prefix}:{local}")
    }
}

/// The state of [`Document::parse`] between tokens.
struct Parser<'t> {
    text: &'t str,
    doc: Document,
    first_quote: Option<char>,
    root: Option<NodeId>,
    root_closed: bool,
    stack: Vec<NodeId>,
    /// Element whose start tag is being read, and the end of its last
    /// attribute (or name).
    pending: Option<(NodeId, usize, usize)>,
}

impl Parser<'_> {
    fn at(&self, off: usize) -> Position {
        Position::from_offset(self.text, off)
    }

    fn token(&mut self, token: Token) -> Result<(), XmlError> {
        match token {
            Token::ElementStart {
                prefix,
                local,
                span,
            } => self.element_start(qname(prefix.as_str(), local.as_str()), span),
            Token::Attribute {
                prefix,
                local,
                value,
                span,
            } => self.attribute(qname(prefix.as_str(), local.as_str()), value, span),
            Token::ElementEnd { end, span } => match end {
                ElementEnd::Open | ElementEnd::Empty => {
                    self.start_tag_end(end == ElementEnd::Empty, span)
                }
                ElementEnd::Close(prefix, local) => {
                    self.end_tag(qname(prefix.as_str(), local.as_str()), span)
                }
            },
            Token::Text { text: t } => {
                if let Some(&parent) = self.stack.last() {
                    self.doc
                        .push(Some(parent), Kind::Text(Raw::Orig(t.range())));
                }
                Ok(())
            }
            Token::Cdata { span, .. } => {
                if let Some(&parent) = self.stack.last() {
                    self.doc.push(Some(parent), Kind::Cdata(span.range()));
                }
                Ok(())
            }
            Token::Comment { span, .. } | Token::ProcessingInstruction { span, .. } => {
                // Outside the root these stay part of the raw prolog/epilog.
                if let Some(&parent) = self.stack.last() {
                    self.doc.push(Some(parent), Kind::Misc(span.range()));
                }
                Ok(())
            }
            Token::Declaration { .. }
            | Token::DtdStart { .. }
            | Token::EmptyDtd { .. }
            | Token::EntityDeclaration { .. }
            | Token::DtdEnd { .. } => Ok(()),
        }
    }

    fn element_start(&mut self, name: String, span: xmlparser::StrSpan) -> Result<(), XmlError> {
        let raw_name = span.as_str().get(1..).unwrap_or("");
        if name != raw_name {
            // e.g. `<:a>`: an empty prefix, which end tags cannot match.
            return Err(XmlError::Syntax {
                pos: self.at(span.start()),
                message: format!(
                    "malformed element name `{raw_name}`; expected NAME or PREFIX:NAME"
                ),
            });
        }
        if self.root_closed {
            return Err(XmlError::Syntax {
                pos: self.at(span.start()),
                message: "second root element; expected end of document".into(),
            });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(XmlError::TooDeep {
                pos: self.at(span.start()),
                limit: MAX_DEPTH,
            });
        }
        let parent = self.stack.last().copied();
        let id = self.doc.push(
            parent,
            Kind::Element(Elem {
                name: raw_name.to_string(),
                attrs: Vec::new(),
                orig_start: None,
                tail: Raw::New(String::new()),
                orig_end: None,
                orig_empty: false,
                empty_form: false,
                attrs_dirty: false,
                children: Vec::new(),
            }),
        );
        if parent.is_none() {
            self.root = Some(id);
            self.doc.prolog_end = span.start();
        }
        self.pending = Some((id, span.start(), span.end()));
        Ok(())
    }

    fn attribute(
        &mut self,
        name: String,
        value: xmlparser::StrSpan,
        span: xmlparser::StrSpan,
    ) -> Result<(), XmlError> {
        let text = self.text;
        let Some((id, _, prev_end)) = self.pending.as_mut() else {
            return Err(XmlError::Syntax {
                pos: self.at(span.start()),
                message: "attribute outside of a start tag".into(),
            });
        };
        let quote = text[..span.end()].chars().next_back().unwrap_or('\'');
        self.first_quote.get_or_insert(quote);
        let lead = *prev_end..span.start();
        *prev_end = span.end();
        let id = *id;
        let Some(e) = self.doc.elem_mut(id) else {
            return Ok(());
        };
        if e.attrs.iter().any(|a| a.name == name) {
            return Err(XmlError::DuplicateAttribute {
                pos: Position::from_offset(text, span.start()),
                name,
            });
        }
        e.attrs.push(Attr {
            name,
            lead: Raw::Orig(lead),
            orig: Some(span.range()),
            value: Raw::Orig(value.range()),
            quote,
            removed: false,
        });
        Ok(())
    }

    /// `>` or `/>` of a start tag.
    fn start_tag_end(&mut self, empty: bool, span: xmlparser::StrSpan) -> Result<(), XmlError> {
        let Some((id, start, prev_end)) = self.pending.take() else {
            return Err(XmlError::Syntax {
                pos: self.at(span.start()),
                message: "tag end outside of a start tag".into(),
            });
        };
        if let Some(e) = self.doc.elem_mut(id) {
            e.orig_start = Some(start..span.end());
            e.tail = Raw::Orig(prev_end..span.start());
            e.orig_empty = empty;
            e.empty_form = empty;
        }
        if !empty {
            self.stack.push(id);
        } else if self.stack.is_empty() {
            self.root_closed = true;
            self.doc.epilog_start = span.end();
        }
        Ok(())
    }

    fn end_tag(&mut self, found: String, span: xmlparser::StrSpan) -> Result<(), XmlError> {
        let Some(id) = self.stack.pop() else {
            return Err(XmlError::UnexpectedEndTag {
                pos: self.at(span.start()),
                found,
            });
        };
        let pos = self.at(span.start());
        let Some(e) = self.doc.elem_mut(id) else {
            return Ok(());
        };
        if e.name != found {
            return Err(XmlError::MismatchedTag {
                pos,
                expected: e.name.clone(),
                found,
            });
        }
        e.orig_end = Some(span.range());
        if self.stack.is_empty() {
            self.root_closed = true;
            self.doc.epilog_start = span.end();
        }
        Ok(())
    }

    /// The document once every token is read: no start tag or element left open, one root.
    fn finish(mut self) -> Result<Document, XmlError> {
        let end = self.at(self.text.len());
        if let Some((id, _, _)) = self.pending {
            return Err(XmlError::UnexpectedEof {
                pos: end,
                expected: format!("'>' or '/>' to end the start tag <{}", self.doc.name(id)),
            });
        }
        if let Some(&id) = self.stack.last() {
            return Err(XmlError::UnexpectedEof {
                pos: end,
                expected: format!("end tag </{}>", self.doc.name(id)),
            });
        }
        match self.root {
            Some(r) if self.root_closed => self.doc.root = r,
            _ => return Err(XmlError::NoRoot { pos: end }),
        }
        self.doc.quote = self.first_quote.unwrap_or('\'');
        Ok(self.doc)
    }
}

impl Document {
    /// Parses `text`. Rejects malformed XML (syntax errors, unclosed or
    /// mismatched tags, no root or more than one root, duplicate attributes,
    /// nesting deeper than [`MAX_DEPTH`]). Never panics.
    pub fn parse(text: &str) -> Result<Document, XmlError> {
        let mut p = Parser {
            text,
            doc: Document {
                text: text.to_string(),
                nodes: Vec::new(),
                root: NodeId(0),
                prolog_end: 0,
                epilog_start: text.len(),
                quote: '\'',
                newline: if text.contains("\r\n") { "\r\n" } else { "\n" },
            },
            first_quote: None,
            root: None,
            root_closed: false,
            stack: Vec::new(),
            pending: None,
        };
        for token in Tokenizer::from(text) {
            let token = match token {
                Ok(t) => t,
                Err(e) => {
                    let pos = e.pos();
                    let mut message = e.to_string();
                    if p.root_closed {
                        message.push_str(
                            "; expected only comments, processing instructions and \
                             whitespace after the root element",
                        );
                    }
                    return Err(XmlError::Syntax {
                        pos: Position::from_line_col(text, pos.row, pos.col),
                        message,
                    });
                }
            };
            p.token(token)?;
        }
        p.finish()
    }

    fn push(&mut self, parent: Option<NodeId>, kind: Kind) -> NodeId {
        let id = NodeId(self.nodes.len());
        self.nodes.push(Node { parent, kind });
        if let Some(p) = parent {
            if let Some(e) = self.elem_mut(p) {
                e.children.push(id);
            }
        }
        id
    }

    /// Creates a node with `parent` set but not linked into its children.
    fn alloc(&mut self, parent: NodeId, kind: Kind) -> NodeId {
        let id = NodeId(self.nodes.len());
        self.nodes.push(Node {
            parent: Some(parent),
            kind,
        });
        id
    }

    fn new_elem(&mut self, parent: NodeId, name: &str) -> NodeId {
        self.alloc(
            parent,
            Kind::Element(Elem {
                name: name.to_string(),
                attrs: Vec::new(),
                orig_start: None,
                tail: Raw::New(String::new()),
                orig_end: None,
                orig_empty: true,
                empty_form: true,
                attrs_dirty: true,
                children: Vec::new(),
            }),
        )
    }

    fn new_text(&mut self, parent: NodeId, s: String) -> NodeId {
        self.alloc(parent, Kind::Text(Raw::New(s)))
    }

    fn elem(&self, id: NodeId) -> Option<&Elem> {
        match &self.nodes.get(id.0)?.kind {
            Kind::Element(e) => Some(e),
            _ => None,
        }
    }

    fn elem_mut(&mut self, id: NodeId) -> Option<&mut Elem> {
        match &mut self.nodes.get_mut(id.0)?.kind {
            Kind::Element(e) => Some(e),
            _ => None,
        }
    }

    fn raw<'a>(&'a self, r: &'a Raw) -> &'a str {
        match r {
            Raw::Orig(range) => &self.text[range.clone()],
            Raw::New(s) => s,
        }
    }

    fn children(&self, id: NodeId) -> &[NodeId] {
        self.elem(id).map_or(&[], |e| &e.children)
    }

    fn is_element(&self, id: NodeId) -> bool {
        self.elem(id).is_some()
    }

    /// Raw text of a text node, if `id` is one.
    fn text_raw(&self, id: NodeId) -> Option<&str> {
        match &self.nodes.get(id.0)?.kind {
            Kind::Text(r) => Some(self.raw(r)),
            _ => None,
        }
    }

    /// Indentation of the line `id` starts on, detected from the whitespace
    /// text right before it. The root has `""`; `None` if not detectable
    /// (e.g. the node is not the first thing on its line).
    fn indent_before(&self, id: NodeId) -> Option<String> {
        let Some(parent) = self.nodes.get(id.0)?.parent else {
            return Some(String::new());
        };
        let kids = self.children(parent);
        let pos = kids.iter().position(|&k| k == id)?;
        let prev = self.text_raw(*kids.get(pos.checked_sub(1)?)?)?;
        let i = prev.rfind('\n')?;
        let ind = &prev[i + 1..];
        ind.chars()
            .all(|c| c == ' ' || c == '\t')
            .then(|| ind.to_string())
    }

    /// Serializes the document. Byte-identical to the input when unedited.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 64);
        out.push_str(&self.text[..self.prolog_end]);
        self.write_node(self.root, &mut out);
        out.push_str(&self.text[self.epilog_start..]);
        out
    }

    /// Serializes one element and its subtree (as [`Document::to_xml`] writes it).
    pub fn element_xml(&self, id: NodeId) -> String {
        let mut out = String::new();
        self.write_node(id, &mut out);
        out
    }

    fn write_node(&self, top: NodeId, out: &mut String) {
        enum Step {
            Open(NodeId),
            Close(NodeId),
        }
        let mut work = vec![Step::Open(top)];
        while let Some(step) = work.pop() {
            match step {
                Step::Open(id) => match &self.nodes[id.0].kind {
                    Kind::Element(e) => {
                        let empty = self.write_start(e, out);
                        if !empty {
                            work.push(Step::Close(id));
                            work.extend(e.children.iter().rev().map(|&c| Step::Open(c)));
                        }
                    }
                    Kind::Text(r) => out.push_str(self.raw(r)),
                    Kind::Cdata(r) | Kind::Misc(r) => out.push_str(&self.text[r.clone()]),
                },
                Step::Close(id) => {
                    if let Some(e) = self.elem(id) {
                        match &e.orig_end {
                            Some(r) => out.push_str(&self.text[r.clone()]),
                            None => {
                                out.push_str("</");
                                out.push_str(&e.name);
                                out.push('>');
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes the start tag; returns true if it was written self-closing.
    fn write_start(&self, e: &Elem, out: &mut String) -> bool {
        let empty = e.children.is_empty() && e.empty_form;
        if let Some(r) = &e.orig_start {
            if !e.attrs_dirty && empty == e.orig_empty {
                out.push_str(&self.text[r.clone()]);
                return empty;
            }
        }
        out.push('<');
        out.push_str(&e.name);
        for a in e.attrs.iter().filter(|a| !a.removed) {
            out.push_str(self.raw(&a.lead));
            match &a.orig {
                Some(r) => out.push_str(&self.text[r.clone()]),
                None => {
                    out.push_str(&a.name);
                    out.push('=');
                    out.push(a.quote);
                    out.push_str(self.raw(&a.value));
                    out.push(a.quote);
                }
            }
        }
        let tail = self.raw(&e.tail);
        if empty {
            out.push_str(tail);
            out.push_str("/>");
        } else {
            // `<a />` becoming `<a>`: drop the space that preceded `/>`.
            out.push_str(if e.orig_empty { tail.trim_end() } else { tail });
            out.push('>');
        }
        empty
    }

    /// The root element.
    pub fn root(&self) -> NodeId {
        self.root
    }

    /// Element name as written, including any namespace prefix (`""` for
    /// non-elements).
    pub fn name(&self, id: NodeId) -> &str {
        self.elem(id).map_or("", |e| &e.name)
    }

    /// Parent element (`None` for the root).
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.nodes.get(id.0)?.parent
    }

    /// Element children in document order.
    pub fn elements(&self, id: NodeId) -> Vec<NodeId> {
        self.children(id)
            .iter()
            .copied()
            .filter(|&c| self.is_element(c))
            .collect()
    }

    /// First element child named `name`.
    pub fn child(&self, id: NodeId, name: &str) -> Option<NodeId> {
        self.children(id)
            .iter()
            .copied()
            .find(|&c| self.elem(c).is_some_and(|e| e.name == name))
    }

    /// All element children named `name`, in document order.
    pub fn children_named(&self, id: NodeId, name: &str) -> Vec<NodeId> {
        self.children(id)
            .iter()
            .copied()
            .filter(|&c| self.elem(c).is_some_and(|e| e.name == name))
            .collect()
    }

    /// Unescaped value of attribute `name`.
    pub fn attr(&self, id: NodeId, name: &str) -> Option<String> {
        let e = self.elem(id)?;
        let a = e.attrs.iter().find(|a| !a.removed && a.name == name)?;
        Some(unescape(self.raw(&a.value)))
    }

    /// All attributes as `(name, unescaped value)`, in order.
    pub fn attrs(&self, id: NodeId) -> Vec<(String, String)> {
        self.elem(id).map_or_else(Vec::new, |e| {
            e.attrs
                .iter()
                .filter(|a| !a.removed)
                .map(|a| (a.name.clone(), unescape(self.raw(&a.value))))
                .collect()
        })
    }

    /// Sets attribute `name` to `value`. An existing attribute is replaced in
    /// place, keeping its quote char (a no-op if the value is unchanged); a new
    /// one is appended at the end of the start tag with the quote char of the
    /// element's other attributes, else of the document, else `'`, separated
    /// by one space (or, when the attributes are laid out one per line, by the
    /// same line break and indentation as the last one). Values are escaped
    /// (`&`, `<`, `>`, the quote char, and tab/CR/LF as character references).
    pub fn set_attr(&mut self, id: NodeId, name: &str, value: &str) {
        let doc_quote = self.quote;
        let text = &self.text;
        let Some(Kind::Element(e)) = self.nodes.get_mut(id.0).map(|n| &mut n.kind) else {
            return;
        };
        let raw = |r: &Raw| match r {
            Raw::Orig(range) => text[range.clone()].to_string(),
            Raw::New(s) => s.clone(),
        };
        if let Some(a) = e.attrs.iter_mut().find(|a| !a.removed && a.name == name) {
            if unescape(&raw(&a.value)) == value {
                return;
            }
            a.value = Raw::New(escape_attr(value, a.quote));
            a.orig = None;
        } else {
            let last = e.attrs.iter().rev().find(|a| !a.removed);
            let quote = last.map_or(doc_quote, |a| a.quote);
            let lead = last
                .map(|a| raw(&a.lead))
                .filter(|l| l.contains('\n') && is_ws(l))
                .unwrap_or_else(|| " ".to_string());
            e.attrs.push(Attr {
                name: name.to_string(),
                lead: Raw::New(lead),
                orig: None,
                value: Raw::New(escape_attr(value, quote)),
                quote,
                removed: false,
            });
        }
        e.attrs_dirty = true;
    }

    /// Removes attribute `name` together with the whitespace before it.
    pub fn remove_attr(&mut self, id: NodeId, name: &str) {
        let Some(e) = self.elem_mut(id) else { return };
        if let Some(a) = e.attrs.iter_mut().find(|a| !a.removed && a.name == name) {
            a.removed = true;
            e.attrs_dirty = true;
        }
    }

    /// Concatenated, unescaped text and CDATA of the direct children, trimmed.
    pub fn text(&self, id: NodeId) -> String {
        let mut s = String::new();
        for &c in self.children(id) {
            match &self.nodes[c.0].kind {
                Kind::Text(r) => s.push_str(&unescape(self.raw(r))),
                Kind::Cdata(r) => {
                    let raw = &self.text[r.clone()];
                    s.push_str(raw.get(9..raw.len().saturating_sub(3)).unwrap_or(""));
                }
                _ => {}
            }
        }
        s.trim().to_string()
    }

    /// Replaces the direct text content with one escaped text node (none if
    /// `text` is empty). Element children and comments are kept; when the
    /// element has element children, only non-whitespace text/CDATA is
    /// replaced so the indentation survives. `<a/>` becomes `<a>text</a>`.
    pub fn set_text(&mut self, id: NodeId, text: &str) {
        let kids = self.children(id).to_vec();
        let has_elems = kids.iter().any(|&c| self.is_element(c));
        let targets: Vec<usize> = kids
            .iter()
            .enumerate()
            .filter(|&(_, &c)| match &self.nodes[c.0].kind {
                Kind::Text(r) => !has_elems || !is_ws(self.raw(r)),
                Kind::Cdata(_) => true,
                _ => false,
            })
            .map(|(i, _)| i)
            .collect();
        let escaped = escape_text(text);
        if let [only] = targets[..] {
            if self.text_raw(kids[only]) == Some(escaped.as_str()) {
                return;
            }
        }
        if targets.is_empty() && text.is_empty() {
            return;
        }
        let at = targets
            .first()
            .copied()
            .unwrap_or(if has_elems { 0 } else { kids.len() });
        let new = (!text.is_empty()).then(|| self.new_text(id, escaped));
        let Some(e) = self.elem_mut(id) else { return };
        for &i in targets.iter().rev() {
            e.children.remove(i);
        }
        if let Some(n) = new {
            e.children.insert(at, n);
        }
    }

    /// Appends a new empty element `<name/>` as the last element child of
    /// `parent`, indented like its element siblings (or one level deeper than
    /// `parent`, moving `parent`'s end tag to its own line).
    pub fn append_element(&mut self, parent: NodeId, name: &str) -> NodeId {
        let nl = self.newline;
        let kids = self.children(parent).to_vec();
        let elem_pos: Vec<usize> = (0..kids.len())
            .filter(|&i| self.is_element(kids[i]))
            .collect();
        let new = self.new_elem(parent, name);
        let mut insert: Vec<NodeId> = Vec::new();
        let at;
        if let Some(&last) = elem_pos.last() {
            let ind = elem_pos
                .iter()
                .rev()
                .find_map(|&i| self.indent_before(kids[i]));
            if let Some(ind) = ind {
                insert.push(self.new_text(parent, format!("{nl}{ind}")));
            }
            insert.push(new);
            at = last + 1;
        } else if let Some(pind) = self.indent_before(parent) {
            insert.push(self.new_text(parent, format!("{nl}{pind}  ")));
            insert.push(new);
            let closing = format!("{nl}{pind}");
            match kids.last() {
                Some(&l) if self.text_raw(l).is_some_and(is_ws) => {
                    at = kids.len() - 1;
                    if self.text_raw(l) != Some(closing.as_str()) {
                        self.nodes[l.0].kind = Kind::Text(Raw::New(closing));
                    }
                }
                _ => {
                    at = kids.len();
                    insert.push(self.new_text(parent, closing));
                }
            }
        } else {
            insert.push(new);
            at = kids.len();
        }
        if let Some(e) = self.elem_mut(parent) {
            e.children.splice(at..at, insert);
        }
        new
    }

    /// Inserts a new empty element `<name/>` right after `sibling`, on its own
    /// line with the same indentation (inline if `sibling` is not on its own
    /// line). If `sibling` was removed, the new element is detached too.
    ///
    /// # Panics
    ///
    /// If `sibling` is the root element (a document has one root).
    pub fn insert_element_after(&mut self, sibling: NodeId, name: &str) -> NodeId {
        let parent = self
            .parent(sibling)
            .expect("insert_element_after: cannot insert a sibling of the root element");
        let new = self.new_elem(parent, name);
        let Some(pos) = self.children(parent).iter().position(|&c| c == sibling) else {
            return new;
        };
        let mut insert = Vec::new();
        if let Some(ind) = self.indent_before(sibling) {
            let nl = self.newline;
            insert.push(self.new_text(parent, format!("{nl}{ind}")));
        }
        insert.push(new);
        if let Some(e) = self.elem_mut(parent) {
            e.children.splice(pos + 1..pos + 1, insert);
        }
        new
    }

    /// First child element named `name`, created with
    /// [`append_element`](Self::append_element) if missing.
    pub fn ensure_child(&mut self, parent: NodeId, name: &str) -> NodeId {
        match self.child(parent, name) {
            Some(c) => c,
            None => self.append_element(parent, name),
        }
    }

    /// Inserts one new empty element `<name/>` per entry of `after`, in one pass
    /// over `parent`'s children: entry `Some(s)` goes right after the child `s`
    /// (after the entries before it with the same `s`), `None` after the last
    /// element child (the first of them as [`append_element`](Self::append_element)
    /// places it). The result is that of calling
    /// [`insert_element_after`](Self::insert_element_after) for each entry in
    /// order, each after the previous new element of its group; an `s` that is
    /// not a child of `parent` leaves its elements detached. Linear in the
    /// number of children plus entries.
    pub fn insert_elements(
        &mut self,
        parent: NodeId,
        after: &[Option<NodeId>],
        name: &str,
    ) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::with_capacity(after.len());
        let mut groups: std::collections::HashMap<NodeId, Vec<usize>> =
            std::collections::HashMap::new();
        let mut at_end: Option<NodeId> = None;
        for (i, a) in after.iter().enumerate() {
            let sibling = match a {
                Some(s) => *s,
                None => match at_end {
                    // Chained after the first appended one.
                    Some(first) => first,
                    None => {
                        let first = self.append_element(parent, name);
                        at_end = Some(first);
                        out.push(first);
                        continue;
                    }
                },
            };
            out.push(self.new_elem(parent, name));
            groups.entry(sibling).or_default().push(i);
        }
        if groups.is_empty() {
            return out;
        }
        let nl = self.newline;
        let kids = self.children(parent).to_vec();
        let mut next: Vec<NodeId> = Vec::with_capacity(kids.len() + 2 * after.len());
        for (pos, &k) in kids.iter().enumerate() {
            next.push(k);
            let Some(group) = groups.get(&k) else {
                continue;
            };
            // The indentation of `k` (what `indent_before` finds).
            let ind = pos
                .checked_sub(1)
                .and_then(|p| self.text_raw(kids[p]))
                .and_then(|prev| {
                    let i = prev.rfind('\n')?;
                    let ind = &prev[i + 1..];
                    ind.chars()
                        .all(|c| c == ' ' || c == '\t')
                        .then(|| ind.to_string())
                });
            for &i in group {
                if let Some(ind) = &ind {
                    next.push(self.new_text(parent, format!("{nl}{ind}")));
                }
                next.push(out[i]);
            }
        }
        if let Some(e) = self.elem_mut(parent) {
            e.children = next;
        }
        out
    }

    /// Removes several elements of one parent, as [`remove`](Self::remove) does
    /// each in document order, in one pass over each parent's children (linear
    /// in their number).
    pub fn remove_many(&mut self, ids: &[NodeId]) {
        let mut by_parent: std::collections::BTreeMap<NodeId, std::collections::HashSet<NodeId>> =
            std::collections::BTreeMap::new();
        for &id in ids {
            if let Some(p) = self.parent(id) {
                by_parent.entry(p).or_default().insert(id);
            }
        }
        for (parent, gone) in by_parent {
            let kids = self.children(parent).to_vec();
            let mut kept: Vec<NodeId> = Vec::with_capacity(kids.len());
            for k in kids {
                if !gone.contains(&k) {
                    kept.push(k);
                    continue;
                }
                // The whitespace before it on its line goes too (as in `remove`).
                let Some(&prev) = kept.last() else { continue };
                let Some(s) = self.text_raw(prev) else {
                    continue;
                };
                let trimmed = s.trim_end_matches([' ', '\t']);
                let cut = match trimmed.strip_suffix('\n') {
                    Some(t) => t.strip_suffix('\r').unwrap_or(t),
                    None => trimmed,
                };
                if cut.is_empty() {
                    kept.pop();
                } else if cut.len() != s.len() {
                    let cut = cut.to_string();
                    self.nodes[prev.0].kind = Kind::Text(Raw::New(cut));
                }
            }
            let only_ws_left = kept.iter().all(|&c| self.text_raw(c).is_some_and(is_ws));
            if let Some(e) = self.elem_mut(parent) {
                e.children = if only_ws_left { Vec::new() } else { kept };
            }
        }
    }

    /// Removes element `id` with its subtree and the whitespace that precedes
    /// it on its line (including that line break), so no blank line remains.
    /// If the parent is left with only whitespace text, that is dropped too and
    /// the parent becomes `<p/>` if it was created empty (written `<p/>` in the
    /// input, or new), else `<p></p>`. Removing the root is a no-op.
    pub fn remove(&mut self, id: NodeId) {
        let Some(parent) = self.parent(id) else {
            return;
        };
        let Some(pos) = self.children(parent).iter().position(|&c| c == id) else {
            return;
        };
        let prev = pos.checked_sub(1).map(|p| self.children(parent)[p]);
        let mut drop_prev = false;
        if let Some(prev) = prev {
            if let Some(s) = self.text_raw(prev) {
                let trimmed = s.trim_end_matches([' ', '\t']);
                let cut = match trimmed.strip_suffix('\n') {
                    Some(t) => t.strip_suffix('\r').unwrap_or(t),
                    None => trimmed,
                };
                if cut.is_empty() {
                    drop_prev = true;
                } else if cut.len() != s.len() {
                    let cut = cut.to_string();
                    self.nodes[prev.0].kind = Kind::Text(Raw::New(cut));
                }
            }
        }
        let kept: Vec<NodeId> = self
            .children(parent)
            .iter()
            .copied()
            .enumerate()
            .filter(|&(i, _)| i != pos && !(drop_prev && i + 1 == pos))
            .map(|(_, c)| c)
            .collect();
        let only_ws_left = kept.iter().all(|&c| self.text_raw(c).is_some_and(is_ws));
        if let Some(e) = self.elem_mut(parent) {
            e.children = if only_ws_left { Vec::new() } else { kept };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) {
        let d = Document::parse(s).unwrap_or_else(|e| panic!("parse failed for {s:?}: {e}"));
        assert_eq!(d.to_xml(), s);
    }

    fn edit(s: &str, f: impl FnOnce(&mut Document)) -> String {
        let mut d = Document::parse(s).unwrap();
        f(&mut d);
        let out = d.to_xml();
        Document::parse(&out).unwrap_or_else(|e| panic!("edit produced bad XML {out:?}: {e}"));
        out
    }

    #[test]
    fn round_trips() {
        rt("<a/>");
        rt("<a />");
        rt("<a></a >");
        rt("\u{feff}<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY e \"x\">]>\n<!-- c --><a>&e;</a>\n<!-- end -->\n");
        rt("<a x=\"1\"  y='2'\n   z = \"3\" >t &amp; &#x41; <![CDATA[<raw>]]><?pi x?><!--c--></a>");
        rt("<metadata><libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">\n  <libosinfo:os id=\"http://x/\"/>\n</libosinfo:libosinfo></metadata>");
        rt("<a>\r\n  <b/>\r\n</a>\r\n");
    }

    #[test]
    fn bulk_inserts_and_removals_equal_one_at_a_time() {
        let docs = [
            "<c>\n  <p i='0'/>\n  <p i='5'/>\n  <e/>\n</c>",
            "<c><p i='0'/><p i='5'/></c>",
            "<c>\n  <e/>\n</c>",
            "<c/>",
            "<c>\r\n    <p i='1'/>\r\n    <p i='2'/>\r\n</c>\r\n",
        ];
        for text in docs {
            let d = Document::parse(text).unwrap();
            let kids = d.elements(d.root());
            // Anchors: after each child, twice after the first, and at the end.
            let mut plans: Vec<Vec<Option<usize>>> = vec![vec![None, None, None]];
            if !kids.is_empty() {
                plans.push(vec![Some(0), Some(0), None, Some(kids.len() - 1)]);
                plans.push((0..kids.len()).map(Some).collect());
            }
            for plan in plans {
                let mut bulk = d.clone();
                let at: Vec<Option<NodeId>> = plan.iter().map(|p| p.map(|i| kids[i])).collect();
                bulk.insert_elements(bulk.root(), &at, "n");
                let mut one = d.clone();
                let mut last: std::collections::HashMap<Option<usize>, NodeId> =
                    std::collections::HashMap::new();
                for p in &plan {
                    let new = match (last.get(p), p) {
                        (Some(prev), _) => one.insert_element_after(*prev, "n"),
                        (None, Some(i)) => one.insert_element_after(kids[*i], "n"),
                        (None, None) => one.append_element(one.root(), "n"),
                    };
                    last.insert(*p, new);
                }
                assert_eq!(bulk.to_xml(), one.to_xml(), "{text:?} {plan:?}");
            }
            for pick in [vec![0usize], vec![0, 1], (0..kids.len()).collect()] {
                let gone: Vec<NodeId> = pick.iter().filter_map(|i| kids.get(*i).copied()).collect();
                let mut bulk = d.clone();
                bulk.remove_many(&gone);
                let mut one = d.clone();
                for g in &gone {
                    one.remove(*g);
                }
                assert_eq!(bulk.to_xml(), one.to_xml(), "{text:?} {pick:?}");
            }
        }
    }

    #[test]
    fn names_and_navigation() {
        let d =
            Document::parse("<m><ns:x xmlns:ns='u'><ns:y/></ns:x><b/><b k='v'/>text</m>").unwrap();
        let r = d.root();
        assert_eq!(d.name(r), "m");
        let x = d.child(r, "ns:x").unwrap();
        assert_eq!(d.parent(x), Some(r));
        assert_eq!(d.parent(r), None);
        assert_eq!(d.elements(x).len(), 1);
        assert_eq!(d.children_named(r, "b").len(), 2);
        assert_eq!(d.attr(x, "xmlns:ns").as_deref(), Some("u"));
        assert_eq!(d.text(r), "text");
    }

    #[test]
    fn unescaping() {
        let d = Document::parse(
            "<a v=\"&lt;&amp;&gt;&quot;&apos;&#65;&#x42;&bogus;&\"> x &amp; <![CDATA[<y>]]> </a>",
        );
        // a bare '&' in an attribute is tolerated by the tokenizer
        let d = d.unwrap();
        assert_eq!(d.attr(d.root(), "v").unwrap(), "<&>\"'AB&bogus;&");
        assert_eq!(d.text(d.root()), "x & <y>");
        assert_eq!(
            d.attrs(d.root()),
            vec![("v".to_string(), "<&>\"'AB&bogus;&".to_string())]
        );
    }

    #[test]
    fn attr_edits() {
        let s = "<a x='1'  y=\"2\" ><b/></a>";
        assert_eq!(
            edit(s, |d| d.set_attr(d.root(), "y", "a\"b'&<")),
            "<a x='1'  y=\"a&quot;b'&amp;&lt;\" ><b/></a>"
        );
        assert_eq!(
            edit(s, |d| d.set_attr(d.root(), "x", "it's")),
            "<a x='it&apos;s'  y=\"2\" ><b/></a>"
        );
        assert_eq!(
            edit(s, |d| d.set_attr(d.root(), "z", "3")),
            "<a x='1'  y=\"2\" z=\"3\" ><b/></a>"
        );
        assert_eq!(edit(s, |d| d.set_attr(d.root(), "x", "1")), s);
        assert_eq!(
            edit(s, |d| d.remove_attr(d.root(), "x")),
            "<a  y=\"2\" ><b/></a>"
        );
        assert_eq!(
            edit(s, |d| d.remove_attr(d.root(), "y")),
            "<a x='1' ><b/></a>"
        );
        assert_eq!(edit(s, |d| d.remove_attr(d.root(), "nope")), s);
        // new attribute on an element without attributes: document quote style
        assert_eq!(
            edit(s, |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.set_attr(b, "k", "v");
            }),
            "<a x='1'  y=\"2\" ><b k='v'/></a>"
        );
        assert_eq!(
            edit("<a><b/></a>", |d| d.set_attr(d.root(), "k", "v")),
            "<a k='v'><b/></a>"
        );
        assert_eq!(
            edit("<a\n    x='1'\n    y='2'/>", |d| d.set_attr(
                d.root(),
                "z",
                "3"
            )),
            "<a\n    x='1'\n    y='2'\n    z='3'/>"
        );
    }

    #[test]
    fn text_edits() {
        assert_eq!(
            edit("<a><b>old</b></a>", |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.set_text(b, "1 < 2 & 3");
            }),
            "<a><b>1 &lt; 2 &amp; 3</b></a>"
        );
        assert_eq!(
            edit("<a><b unit='KiB'/></a>", |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.set_text(b, "4096");
            }),
            "<a><b unit='KiB'>4096</b></a>"
        );
        assert_eq!(
            edit("<a><b /></a>", |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.set_text(b, "x");
            }),
            "<a><b>x</b></a>"
        );
        assert_eq!(
            edit("<a>x<!--c--><![CDATA[y]]>z</a>", |d| d
                .set_text(d.root(), "n")),
            "<a>n<!--c--></a>"
        );
        assert_eq!(
            edit("<a>\n  <b/>\n</a>", |d| d.set_text(d.root(), "t")),
            "<a>t\n  <b/>\n</a>"
        );
        let s = "<a><b>same</b></a>";
        assert_eq!(
            edit(s, |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.set_text(b, "same");
            }),
            s
        );
    }

    #[test]
    fn append_into_various_parents() {
        // non-empty parent at depth 1 and 2
        let s = "<domain>\n  <cputune>\n    <shares>1</shares>\n  </cputune>\n</domain>\n";
        assert_eq!(
            edit(s, |d| {
                let c = d.child(d.root(), "cputune").unwrap();
                let e = d.append_element(c, "emulatorpin");
                d.set_attr(e, "cpuset", "1-2");
            }),
            "<domain>\n  <cputune>\n    <shares>1</shares>\n    <emulatorpin cpuset='1-2'/>\n  </cputune>\n</domain>\n"
        );
        assert_eq!(
            edit(s, |d| {
                d.append_element(d.root(), "memoryBacking");
            }),
            "<domain>\n  <cputune>\n    <shares>1</shares>\n  </cputune>\n  <memoryBacking/>\n</domain>\n"
        );
        // self-closing parent
        assert_eq!(
            edit("<domain>\n  <memoryBacking/>\n</domain>", |d| {
                let mb = d.child(d.root(), "memoryBacking").unwrap();
                let hp = d.append_element(mb, "hugepages");
                let p = d.append_element(hp, "page");
                d.set_attr(p, "size", "2048");
                d.set_attr(p, "unit", "KiB");
            }),
            "<domain>\n  <memoryBacking>\n    <hugepages>\n      <page size='2048' unit='KiB'/>\n    </hugepages>\n  </memoryBacking>\n</domain>"
        );
        // empty open parent, and parent with only whitespace
        assert_eq!(
            edit("<domain>\n  <cputune></cputune>\n</domain>", |d| {
                let c = d.child(d.root(), "cputune").unwrap();
                d.append_element(c, "vcpupin");
            }),
            "<domain>\n  <cputune>\n    <vcpupin/>\n  </cputune>\n</domain>"
        );
        assert_eq!(
            edit("<domain>\n  <cputune>\n  \n  </cputune>\n</domain>", |d| {
                let c = d.child(d.root(), "cputune").unwrap();
                d.append_element(c, "vcpupin");
            }),
            "<domain>\n  <cputune>\n    <vcpupin/>\n  </cputune>\n</domain>"
        );
        // empty root
        assert_eq!(
            edit("<domain/>", |d| {
                d.append_element(d.root(), "name");
            }),
            "<domain>\n  <name/>\n</domain>"
        );
        assert_eq!(
            edit("<domain type='kvm'></domain>", |d| {
                let n = d.append_element(d.root(), "name");
                d.set_text(n, "vm");
            }),
            "<domain type='kvm'>\n  <name>vm</name>\n</domain>"
        );
        // inline content stays inline
        assert_eq!(
            edit("<a><b><c/></b></a>", |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.append_element(b, "x");
            }),
            "<a><b><c/><x/></b></a>"
        );
        // appended after the last element, before a trailing comment
        assert_eq!(
            edit("<a>\n  <b/>\n  <!-- c -->\n</a>", |d| {
                d.append_element(d.root(), "x");
            }),
            "<a>\n  <b/>\n  <x/>\n  <!-- c -->\n</a>"
        );
        // ensure_child
        assert_eq!(
            edit("<a>\n  <b/>\n</a>", |d| {
                let r = d.root();
                let b1 = d.ensure_child(r, "b");
                assert_eq!(Some(b1), d.child(r, "b"));
                d.ensure_child(r, "c");
            }),
            "<a>\n  <b/>\n  <c/>\n</a>"
        );
    }

    #[test]
    fn insert_after() {
        assert_eq!(
            edit("<a>\n  <b>\n    <c/>\n    <e/>\n  </b>\n</a>", |d| {
                let b = d.child(d.root(), "b").unwrap();
                let c = d.child(b, "c").unwrap();
                let n = d.insert_element_after(c, "d");
                d.set_attr(n, "x", "1");
            }),
            "<a>\n  <b>\n    <c/>\n    <d x='1'/>\n    <e/>\n  </b>\n</a>"
        );
        assert_eq!(
            edit("<a><b/><c/></a>", |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.insert_element_after(b, "x");
            }),
            "<a><b/><x/><c/></a>"
        );
    }

    #[test]
    fn removal() {
        let s = "<a>\n  <b/>\n  <c>\n    <d/>\n  </c>\n  <e/>\n</a>\n";
        assert_eq!(
            edit(s, |d| {
                let c = d.child(d.root(), "c").unwrap();
                d.remove(c);
            }),
            "<a>\n  <b/>\n  <e/>\n</a>\n"
        );
        assert_eq!(
            edit(s, |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.remove(b);
            }),
            "<a>\n  <c>\n    <d/>\n  </c>\n  <e/>\n</a>\n"
        );
        assert_eq!(
            edit(s, |d| {
                let e = d.child(d.root(), "e").unwrap();
                d.remove(e);
            }),
            "<a>\n  <b/>\n  <c>\n    <d/>\n  </c>\n</a>\n"
        );
        // parent left empty: was written open -> <c></c>
        assert_eq!(
            edit(s, |d| {
                let c = d.child(d.root(), "c").unwrap();
                let dd = d.child(c, "d").unwrap();
                d.remove(dd);
            }),
            "<a>\n  <b/>\n  <c></c>\n  <e/>\n</a>\n"
        );
        // parent created empty -> back to <p/>
        assert_eq!(
            edit("<a>\n  <p/>\n</a>", |d| {
                let p = d.child(d.root(), "p").unwrap();
                let x = d.append_element(p, "x");
                d.remove(x);
            }),
            "<a>\n  <p/>\n</a>"
        );
        assert_eq!(
            edit("<a><b/><c/></a>", |d| {
                let b = d.child(d.root(), "b").unwrap();
                d.remove(b);
                d.remove(b); // second removal is a no-op
                let r = d.root();
                d.remove(r); // removing the root is a no-op
            }),
            "<a><c/></a>"
        );
        assert_eq!(
            edit("<a>\r\n  <b/>\r\n  <c/>\r\n</a>", |d| {
                let c = d.child(d.root(), "c").unwrap();
                d.remove(c);
                d.append_element(d.root(), "n");
            }),
            "<a>\r\n  <b/>\r\n  <n/>\r\n</a>"
        );
    }

    #[test]
    fn malformed() {
        for s in [
            "",
            "   ",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<<",
            "</a>",
            "<a x='1' x='2'/>",
            "<a",
            "<a x='1'",
            "text",
            "<a/>text",
            "<!-- only a comment -->",
            "<a><b></a></b>",
        ] {
            let e = Document::parse(s);
            assert!(e.is_err(), "{s:?} parsed");
            let msg = e.unwrap_err().to_string();
            assert!(!msg.is_empty());
        }
        let deep = "<a>".repeat(10_000);
        assert!(matches!(
            Document::parse(&deep),
            Err(XmlError::TooDeep { .. })
        ));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        rt(&ok);
        let too = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(
            Document::parse(&too),
            Err(XmlError::TooDeep { .. })
        ));
    }

    #[test]
    fn error_positions() {
        match Document::parse("<a>\n  <b></c>\n</a>") {
            Err(XmlError::MismatchedTag {
                pos,
                expected,
                found,
            }) => {
                assert_eq!((pos.line, pos.col, pos.offset), (2, 6, 9));
                assert_eq!((expected.as_str(), found.as_str()), ("b", "c"));
            }
            other => panic!("{other:?}"),
        }
        match Document::parse("<a>\n<b>") {
            Err(e @ XmlError::UnexpectedEof { .. }) => {
                assert!(e.to_string().contains("expected end tag </b>"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        match Document::parse("<a>\n <b x=></b></a>") {
            Err(XmlError::Syntax { pos, .. }) => assert_eq!(pos.line, 2),
            other => panic!("{other:?}"),
        }
    }
}
