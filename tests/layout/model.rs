//! The model the rules read: every file under `src/` parsed with syn, and from it the module graph (every path
//! one module names in another, resolved from the crate root), the functions and the `pub` items.
//!
//! `src/a/b.rs` and `src/a/b/mod.rs` are `crate::a::b`, `src/main.rs` is the binary, whose `midwatch::` is the
//! library. An edge goes from the module a path is written in to the path it names: every leaf of a `use` tree,
//! grouped or not, and every path of two segments or more in code (expressions, types, patterns, macro
//! arguments) that starts with `crate::`, `super::`, `self::`, a child module or a name a `use` of the same
//! module brought in. Comments, string literals and attributes never count. Code under `#[cfg(test)]` and in
//! `tests.rs` files is marked as test code.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::visit::{self, Visit};

use crate::{sources, src};

/// A path below the crate root, one segment a string: `crate::snow::Client` is `["snow", "Client"]`.
pub(crate) type ModPath = Vec<String>;

/// One path written in a module of `src/`, resolved from the crate root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Reference {
    pub(crate) from: ModPath,
    pub(crate) to: ModPath,
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) in_test: bool,
}

/// A function with a body, outside test code.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) name: String,
    pub(crate) lines: usize,
    /// `pub` or `pub(crate)`.
    pub(crate) reachable: bool,
    pub(crate) returns_string_error: bool,
}

/// What the rules read from `src/`.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) modules: BTreeSet<ModPath>,
    pub(crate) references: Vec<Reference>,
    pub(crate) functions: Vec<Function>,
    /// The file of every item, impl item or field declared exactly `pub`, outside test code.
    pub(crate) pub_items: Vec<String>,
    /// The file of every `pub` field (a field of a `pub` type the tests read), counted apart from the items.
    pub(crate) pub_fields: Vec<String>,
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is the root; `src/main.rs` is `main`.
fn module_of(relative: &str) -> ModPath {
    let stem = relative.strip_suffix(".rs").unwrap_or(relative);
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    if stem == "lib" { Vec::new() } else { stem.split('/').map(str::to_string).collect() }
}

fn is_test_file(relative: &str) -> bool {
    relative.split('/').any(|c| c == "tests" || c == "tests.rs")
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| l.tokens.to_string() == "test"))
}

fn line(span: Span) -> usize {
    span.start().line
}

pub(crate) fn shown(path: &[String]) -> String {
    format!("crate::{}", path.join("::"))
}

/// Reads every file of `src/` once for all the tests of this binary.
pub(crate) static MODEL: LazyLock<Model> = LazyLock::new(|| {
    let root = src("");
    let files = sources(&root).into_iter().map(|path| {
        let relative = path.strip_prefix(&root).expect("below src/").to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (relative, text)
    });
    read(files.collect())
});

/// The model of the files `(path below src/, text)`.
fn read(files: Vec<(String, String)>) -> Model {
    let files: Vec<(String, syn::File)> = files
        .into_iter()
        .map(|(relative, text)| {
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("src/{relative}: {e}"));
            (relative, ast)
        })
        .collect();
    let mut model = Model { modules: files.iter().map(|(r, _)| module_of(r)).collect(), ..Model::default() };
    for (relative, ast) in &files {
        let mut reader = Reader {
            file: format!("src/{relative}"),
            main: relative == "main.rs",
            scope: module_of(relative),
            bindings: Vec::new(),
            in_test: is_test_file(relative),
            model: &mut model,
        };
        reader.visit_file(ast);
    }
    model.references.sort();
    model.references.dedup();
    model
}

/// Walks one file, keeping the module it is in and whether it is test code.
struct Reader<'m> {
    file: String,
    /// `src/main.rs`, the binary: `midwatch::` is the library's root there.
    main: bool,
    scope: ModPath,
    /// The names each enclosing module's `use` items bring in, innermost last.
    bindings: Vec<HashMap<String, ModPath>>,
    in_test: bool,
    model: &'m mut Model,
}

impl Reader<'_> {
    /// `segments` resolved from the crate root, when they name something of this crate.
    fn resolve(&self, segments: &[String]) -> Option<ModPath> {
        let (first, rest) = segments.split_first()?;
        match first.as_str() {
            "crate" if !self.main => Some(rest.to_vec()),
            "midwatch" if self.main => Some(rest.to_vec()),
            "self" if !rest.is_empty() => Some([self.scope.as_slice(), rest].concat()),
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                let base = self.scope.get(..self.scope.len().checked_sub(ups)?)?;
                Some([base, &segments[ups..]].concat())
            }
            _ => {
                let child = [self.scope.as_slice(), std::slice::from_ref(first)].concat();
                if !self.main && self.model.modules.contains(&child) {
                    return Some([child.as_slice(), rest].concat());
                }
                let bound = self.bindings.last().and_then(|b| b.get(first))?;
                Some([bound.as_slice(), rest].concat())
            }
        }
    }

    fn refer(&mut self, segments: &[String], at: Span) {
        if let Some(to) = self.resolve(segments) {
            let reference = Reference {
                from: self.scope.clone(),
                to,
                file: self.file.clone(),
                line: line(at),
                in_test: self.in_test,
            };
            self.model.references.push(reference);
        }
    }

    /// Binds the names the `use` items among `items` bring in, in the innermost module's map; twice, so that a
    /// `use` may start from a name another one brought in.
    fn bind(&mut self, items: &[syn::Item]) {
        for _ in 0..2 {
            for item in items {
                let syn::Item::Use(u) = item else { continue };
                for (segments, name, _) in use_leaves(&u.tree) {
                    if let (Some(name), Some(to)) = (name, self.resolve(&segments)) {
                        self.bindings.last_mut().expect("a module's map").insert(name, to);
                    }
                }
            }
        }
    }

    fn in_module(&mut self, name: Option<String>, items: &[syn::Item], test: bool) {
        let outer = self.in_test;
        self.in_test |= test;
        self.scope.extend(name.clone());
        self.bindings.push(HashMap::new());
        self.bind(items);
        for item in items {
            self.visit_item(item);
        }
        self.bindings.pop();
        if name.is_some() {
            self.scope.pop();
        }
        self.in_test = outer;
    }

    fn function(&mut self, name: &syn::Ident, vis: Option<&syn::Visibility>, sig: &syn::Signature, block: &syn::Block) {
        if self.in_test {
            return;
        }
        let start = line(sig.fn_token.span);
        let end = block.brace_token.span.close().end().line;
        let reachable = vis.is_some_and(|v| {
            matches!(v, syn::Visibility::Public(_))
                || matches!(v, syn::Visibility::Restricted(r) if r.in_token.is_none() && r.path.is_ident("crate"))
        });
        let mut finder = StringError(false);
        if let syn::ReturnType::Type(_, ty) = &sig.output {
            finder.visit_type(ty);
        }
        self.model.functions.push(Function {
            file: self.file.clone(),
            line: start,
            name: name.to_string(),
            lines: end + 1 - start,
            reachable,
            returns_string_error: finder.0,
        });
    }

    fn count_pub(&mut self, vis: &syn::Visibility) {
        if !self.in_test && matches!(vis, syn::Visibility::Public(_)) {
            self.model.pub_items.push(self.file.clone());
        }
    }
}

/// Every leaf of a `use` tree: its path, the name it binds (none for a glob) and where it is written.
fn use_leaves(tree: &syn::UseTree) -> Vec<(ModPath, Option<String>, Span)> {
    fn walk(tree: &syn::UseTree, prefix: &mut ModPath, out: &mut Vec<(ModPath, Option<String>, Span)>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(&p.tree, prefix, out);
                prefix.pop();
            }
            syn::UseTree::Name(n) if n.ident == "self" => {
                out.push((prefix.clone(), prefix.last().cloned(), n.ident.span()));
            }
            syn::UseTree::Name(n) => {
                let path = [prefix.as_slice(), &[n.ident.to_string()]].concat();
                out.push((path, Some(n.ident.to_string()), n.ident.span()));
            }
            syn::UseTree::Rename(r) => {
                let path = [prefix.as_slice(), &[r.ident.to_string()]].concat();
                out.push((path, Some(r.rename.to_string()), r.ident.span()));
            }
            syn::UseTree::Glob(g) => out.push((prefix.clone(), None, g.star_token.span)),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| walk(t, prefix, out)),
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

/// The attributes of an item, to see `#[cfg(test)]`, and its visibility.
fn item_head(item: &syn::Item) -> (&[syn::Attribute], Option<&syn::Visibility>) {
    match item {
        syn::Item::Const(i) => (&i.attrs, Some(&i.vis)),
        syn::Item::Enum(i) => (&i.attrs, Some(&i.vis)),
        syn::Item::Fn(i) => (&i.attrs, Some(&i.vis)),
        syn::Item::Impl(i) => (&i.attrs, None),
        syn::Item::Mod(i) => (&i.attrs, Some(&i.vis)),
        syn::Item::Static(i) => (&i.attrs, Some(&i.vis)),
        syn::Item::Struct(i) => (&i.attrs, Some(&i.vis)),
        syn::Item::Trait(i) => (&i.attrs, Some(&i.vis)),
        syn::Item::Type(i) => (&i.attrs, Some(&i.vis)),
        syn::Item::Use(i) => (&i.attrs, Some(&i.vis)),
        _ => (&[], None),
    }
}

impl<'ast> Visit<'ast> for Reader<'_> {
    fn visit_file(&mut self, file: &'ast syn::File) {
        self.in_module(None, &file.items, false);
    }

    fn visit_item(&mut self, item: &'ast syn::Item) {
        let outer = self.in_test;
        let (attrs, vis) = item_head(item);
        self.in_test |= is_cfg_test(attrs);
        if let Some(vis) = vis {
            self.count_pub(vis);
        }
        visit::visit_item(self, item);
        self.in_test = outer;
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // `mod x;` declares a file of its own, read on its own.
        if let Some((_, items)) = &m.content {
            self.in_module(Some(m.ident.to_string()), items, is_cfg_test(&m.attrs));
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        for (segments, _, at) in use_leaves(&u.tree) {
            self.refer(&segments, at);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        // A path of one segment is a local name, or one a `use` brought in (an edge already).
        if path.segments.len() > 1 && path.leading_colon.is_none() {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.refer(&segments, path.segments[0].ident.span());
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        for (segments, at) in macro_paths(mac.tokens.clone()) {
            self.refer(&segments, at);
        }
        visit::visit_macro(self, mac);
    }

    /// Attributes hold no edge: their paths are `derive`, `cfg`, `serde`, and their arguments text.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.function(&f.sig.ident, Some(&f.vis), &f.sig, &f.block);
        visit::visit_item_fn(self, f);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let outer = self.in_test;
        let (attrs, vis) = match item {
            syn::ImplItem::Const(i) => (i.attrs.as_slice(), &i.vis),
            syn::ImplItem::Fn(i) => (i.attrs.as_slice(), &i.vis),
            syn::ImplItem::Type(i) => (i.attrs.as_slice(), &i.vis),
            _ => (&[][..], &syn::Visibility::Inherited),
        };
        self.in_test |= is_cfg_test(attrs);
        self.count_pub(vis);
        visit::visit_impl_item(self, item);
        self.in_test = outer;
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.function(&f.sig.ident, Some(&f.vis), &f.sig, &f.block);
        visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.function(&f.sig.ident, None, &f.sig, block);
        }
        visit::visit_trait_item_fn(self, f);
    }

    fn visit_field(&mut self, f: &'ast syn::Field) {
        if !self.in_test && matches!(f.vis, syn::Visibility::Public(_)) {
            self.model.pub_fields.push(self.file.clone());
        }
        visit::visit_field(self, f);
    }
}

/// The paths in a macro's arguments that start with `crate`, `super`, `self` or `midwatch` and go on with `::`.
fn macro_paths(tokens: TokenStream) -> Vec<(ModPath, Span)> {
    fn flatten(tokens: TokenStream, out: &mut Vec<TokenTree>) {
        for token in tokens {
            match token {
                TokenTree::Group(g) => flatten(g.stream(), out),
                other => out.push(other),
            }
        }
    }
    let is_colons = |t: &[TokenTree]| matches!(t, [TokenTree::Punct(a), TokenTree::Punct(b), ..] if a.as_char() == ':' && b.as_char() == ':');
    let mut flat = Vec::new();
    flatten(tokens, &mut flat);
    let mut out = Vec::new();
    for (i, token) in flat.iter().enumerate() {
        let TokenTree::Ident(start) = token else { continue };
        let after_colons = i >= 2 && is_colons(&flat[i - 2..]);
        if after_colons || !["crate", "super", "self", "midwatch"].iter().any(|s| start == s) {
            continue;
        }
        let mut segments = vec![start.to_string()];
        let mut j = i + 1;
        while is_colons(&flat[j.min(flat.len())..])
            && let Some(TokenTree::Ident(next)) = flat.get(j + 2)
        {
            segments.push(next.to_string());
            j += 3;
        }
        if segments.len() > 1 {
            out.push((segments, start.span()));
        }
    }
    out
}

/// Finds `Result<_, String>` anywhere in a return type.
struct StringError(bool);

impl<'ast> Visit<'ast> for StringError {
    fn visit_type_path(&mut self, t: &'ast syn::TypePath) {
        if let Some(last) = t.path.segments.last()
            && last.ident == "Result"
            && let syn::PathArguments::AngleBracketed(args) = &last.arguments
            && let Some(syn::GenericArgument::Type(syn::Type::Path(error))) = args.args.iter().nth(1)
            && error.path.segments.last().is_some_and(|s| s.ident == "String" && s.arguments.is_none())
        {
            self.0 = true;
        }
        visit::visit_type_path(self, t);
    }
}

#[test]
fn the_reader_sees_use_trees_and_paths_in_code_but_no_comment_or_string() {
    let a = r#"
        mod inner;
        pub use inner::X;
        use crate::{b::{self, Y}, c as d};
        pub(crate) fn f() -> Option<Result<(), String>> {
            b::g(); crate::b::h(); let s = "crate::zzz"; // crate::yyy
            tracing::info!("{}", crate::b::k);
            None
        }
        #[cfg(test)]
        mod tests { use super::*; use crate::b::T; pub fn long() {} }
    "#;
    let files = [
        ("lib.rs", "pub mod a;\nmod b;"),
        ("a/mod.rs", a),
        ("a/inner.rs", "pub struct X { pub x: u8, pub(crate) y: u8 }"),
        ("b.rs", "use super::a::inner::X;"),
        ("main.rs", "fn main() {\n    midwatch::a::f();\n}"),
    ];
    let model = read(files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect());
    let seen: Vec<String> = model
        .references
        .iter()
        .map(|r| {
            format!(
                "{}:{} {} -> {}{}",
                r.file,
                r.line,
                r.from.join("::"),
                shown(&r.to),
                ["", " (test)"][r.in_test as usize]
            )
        })
        .collect();
    let expected = [
        "src/a/mod.rs:3 a -> crate::a::inner::X",
        "src/a/mod.rs:4 a -> crate::b",
        "src/a/mod.rs:4 a -> crate::b::Y",
        "src/a/mod.rs:4 a -> crate::c",
        "src/a/mod.rs:6 a -> crate::b::g",
        "src/a/mod.rs:6 a -> crate::b::h",
        "src/a/mod.rs:7 a -> crate::b::k",
        "src/a/mod.rs:11 a::tests -> crate::a (test)",
        "src/a/mod.rs:11 a::tests -> crate::b::T (test)",
        "src/b.rs:1 b -> crate::a::inner::X",
        "src/main.rs:2 main -> crate::a::f",
    ];
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    let mut expected: Vec<String> = expected.iter().map(|e| e.to_string()).collect();
    expected.sort();
    assert_eq!(seen_sorted, expected);

    let shape: Vec<String> = model
        .functions
        .iter()
        .map(|f| format!("{}:{} {} {} {} {}", f.file, f.line, f.name, f.lines, f.reachable, f.returns_string_error))
        .collect();
    assert_eq!(shape, ["src/a/mod.rs:5 f 5 true true", "src/main.rs:1 main 3 false false"]);
    // `pub mod a`, `pub use inner::X`, `pub struct X`, and apart from them its field `x`; not `pub(crate)`, not
    // test code.
    let mut pub_items = model.pub_items.clone();
    pub_items.sort();
    assert_eq!(pub_items, ["src/a/inner.rs", "src/a/mod.rs", "src/lib.rs"]);
    assert_eq!(model.pub_fields, ["src/a/inner.rs"]);
}
