//! Nexus service contracts written in protobuf, turned into Trellis contracts.
//!
//! A `.proto` file is a language-neutral way to write a Nexus contract that several teams share:
//! messages are the operations' inputs and outputs, and a `service` lists the operations. This
//! crate reads such files (with [`protox`], a protobuf compiler in pure Rust: no `protoc`
//! needed) and writes, per protobuf package, one Rust file with:
//!
//! - a serde struct per message (`Clone, Debug, Default, PartialEq, Serialize, Deserialize`,
//!   missing fields default as in proto3), and a serde enum per enum (by value name);
//! - per service, a unit struct implementing `trellis_worker::nexus::Service` (its `NAME` is the
//!   service name as written), with one `Operation<Input, Output>` constant per `rpc`. The
//!   operation's name is the rpc's name as written and the constant is that name in
//!   `SCREAMING_SNAKE_CASE`: `rpc get_weather(City) returns (Forecast)` becomes
//!   `GET_WEATHER: Operation<City, Forecast>` named `"get_weather"`.
//!
//! Comments in the `.proto` become doc comments. `google.protobuf.Empty` as an input or output
//! becomes `()`.
//!
//! ## Payloads
//!
//! The generated types go through the data converter like any serde value: `json/plain` by
//! default, with the field names as written in the `.proto` (64-bit integers as JSON numbers,
//! enums by value name). That is what a Python SDK contract with dataclasses of the same field
//! names reads and writes, so a contract written once in `.proto` serves Rust and Python
//! callers alike. It is not the proto3 JSON mapping (`json/protobuf`, lowerCamelCase names).
//!
//! ## What is refused
//!
//! Each with an error naming the file and the item: proto2 and editions files, `oneof`s (other
//! than proto3 `optional`), streaming rpcs, and references to messages of another package
//! (well-known types included) other than `google.protobuf.Empty`.
//!
//! ## Use
//!
//! From a build script, writing into `OUT_DIR`:
//!
//! ```no_run
//! let out = std::env::var("OUT_DIR").unwrap();
//! trellis_codegen::Codegen::new()
//!     .include("proto")
//!     .file("proto/acme/weather/v1/weather.proto")
//!     .write_to(&out)
//!     .unwrap();
//! // then, in the crate: include!(concat!(env!("OUT_DIR"), "/acme.weather.v1.rs"));
//! ```
//!
//! or, to commit the generated code, from a task such as Trellis's own `cargo xtask codegen`,
//! with [`Codegen::check`] to fail when the committed code is stale.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};

/// What went wrong while generating.
#[derive(Debug)]
pub enum CodegenError {
    /// The `.proto` files did not compile (syntax, unknown import, unknown type, ...).
    Parse(String),
    /// The files compiled, but use something the generator does not support.
    Unsupported {
        /// The `.proto` file.
        file: String,
        /// The item, fully qualified (e.g. `acme.weather.v1.City.sky`).
        item: String,
        /// Why it is refused.
        reason: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl std::fmt::Display for CodegenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodegenError::Parse(e) => write!(f, "the .proto files do not compile: {e}"),
            CodegenError::Unsupported { file, item, reason } => {
                write!(f, "{file}: {item}: {reason}")
            }
            CodegenError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for CodegenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodegenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One generated Rust file: everything of one protobuf package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The protobuf package (e.g. `acme.weather.v1`).
    pub package: String,
    /// The file name: the package and `.rs` (e.g. `acme.weather.v1.rs`).
    pub file_name: String,
    /// The Rust source.
    pub contents: String,
}

/// The generator: which `.proto` files, and where their imports are found.
#[derive(Clone, Debug)]
pub struct Codegen {
    files: Vec<PathBuf>,
    includes: Vec<PathBuf>,
    nexus_path: String,
    serde_path: String,
}

impl Default for Codegen {
    fn default() -> Self {
        Self::new()
    }
}

impl Codegen {
    /// No files yet; generated code names `::trellis_worker::nexus` and `::serde`.
    pub fn new() -> Self {
        Codegen {
            files: Vec::new(),
            includes: Vec::new(),
            nexus_path: "::trellis_worker::nexus".into(),
            serde_path: "::serde".into(),
        }
    }

    /// Adds a directory imports are resolved against (the root of the `.proto` tree). Each file
    /// must be under one of them.
    pub fn include(mut self, dir: impl Into<PathBuf>) -> Self {
        self.includes.push(dir.into());
        self
    }

    /// Adds a `.proto` file to generate code for.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// The Rust path of Trellis's Nexus module in generated code (default
    /// `::trellis_worker::nexus`), for crates that re-export it.
    pub fn nexus_path(mut self, path: impl Into<String>) -> Self {
        self.nexus_path = path.into();
        self
    }

    /// The Rust path of `serde` in generated code (default `::serde`).
    pub fn serde_path(mut self, path: impl Into<String>) -> Self {
        self.serde_path = path.into();
        self
    }

    /// Compiles the files and generates one Rust file per protobuf package, sorted by package.
    pub fn generate(&self) -> Result<Vec<GeneratedFile>, CodegenError> {
        let includes = if self.includes.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            self.includes.clone()
        };
        let mut compiler =
            protox::Compiler::new(&includes).map_err(|e| CodegenError::Parse(e.to_string()))?;
        compiler.include_source_info(true).include_imports(true);
        compiler
            .open_files(&self.files)
            .map_err(|e| CodegenError::Parse(e.to_string()))?;
        let wanted: Vec<String> = compiler
            .files()
            .filter(|f| !f.is_import())
            .map(|f| f.name().to_owned())
            .collect();
        let set = compiler.file_descriptor_set();
        let index = TypeIndex::new(&set.file);
        let mut packages: BTreeMap<String, Vec<&FileDescriptorProto>> = BTreeMap::new();
        for file in set
            .file
            .iter()
            .filter(|f| wanted.contains(&f.name().to_owned()))
        {
            packages
                .entry(file.package().to_owned())
                .or_default()
                .push(file);
        }
        packages
            .into_iter()
            .map(|(package, files)| {
                let contents = Generator {
                    index: &index,
                    nexus: &self.nexus_path,
                    serde: &self.serde_path,
                    package: &package,
                    out: String::new(),
                }
                .package(&files)?;
                let file_name = if package.is_empty() {
                    "_.rs".to_owned()
                } else {
                    format!("{package}.rs")
                };
                Ok(GeneratedFile {
                    package,
                    file_name,
                    contents,
                })
            })
            .collect()
    }

    /// Generates and writes the files into `dir` (created if missing), returning their paths.
    /// Files whose contents are already up to date are not rewritten.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, CodegenError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| CodegenError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut written = Vec::new();
        for file in self.generate()? {
            let path = dir.join(&file.file_name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(file.contents.as_str()) {
                std::fs::write(&path, &file.contents).map_err(|source| CodegenError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            written.push(path);
        }
        Ok(written)
    }

    /// Generates and compares with the files in `dir`: the paths that are missing or differ
    /// (empty when everything is up to date). Writes nothing.
    pub fn check(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, CodegenError> {
        let dir = dir.as_ref();
        Ok(self
            .generate()?
            .into_iter()
            .filter_map(|file| {
                let path = dir.join(&file.file_name);
                let current = std::fs::read_to_string(&path).ok();
                (current.as_deref() != Some(file.contents.as_str())).then_some(path)
            })
            .collect())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message,
    MapEntry,
    Enum,
}

struct TypeInfo<'a> {
    kind: Kind,
    package: String,
    /// Proto names from the package down (e.g. `["Outer", "Inner"]`).
    names: Vec<String>,
    message: Option<&'a DescriptorProto>,
    file: String,
}

/// Every message and enum of the compiled files, by fully qualified name (`.pkg.Msg`).
struct TypeIndex<'a> {
    types: HashMap<String, TypeInfo<'a>>,
}

impl<'a> TypeIndex<'a> {
    fn new(files: &'a [FileDescriptorProto]) -> Self {
        let mut types = HashMap::new();
        for file in files {
            let prefix = if file.package().is_empty() {
                String::new()
            } else {
                format!(".{}", file.package())
            };
            for m in &file.message_type {
                Self::add_message(&mut types, file, &prefix, &[], m);
            }
            for e in &file.enum_type {
                types.insert(
                    format!("{prefix}.{}", e.name()),
                    TypeInfo {
                        kind: Kind::Enum,
                        package: file.package().to_owned(),
                        names: vec![e.name().to_owned()],
                        message: None,
                        file: file.name().to_owned(),
                    },
                );
            }
        }
        TypeIndex { types }
    }

    fn add_message(
        types: &mut HashMap<String, TypeInfo<'a>>,
        file: &'a FileDescriptorProto,
        prefix: &str,
        parents: &[String],
        m: &'a DescriptorProto,
    ) {
        let mut names = parents.to_vec();
        names.push(m.name().to_owned());
        let full = format!("{prefix}.{}", m.name());
        let map_entry = m.options.as_ref().and_then(|o| o.map_entry) == Some(true);
        for nested in &m.nested_type {
            Self::add_message(types, file, &full, &names, nested);
        }
        for e in &m.enum_type {
            let mut enum_names = names.clone();
            enum_names.push(e.name().to_owned());
            types.insert(
                format!("{full}.{}", e.name()),
                TypeInfo {
                    kind: Kind::Enum,
                    package: file.package().to_owned(),
                    names: enum_names,
                    message: None,
                    file: file.name().to_owned(),
                },
            );
        }
        types.insert(
            full,
            TypeInfo {
                kind: if map_entry {
                    Kind::MapEntry
                } else {
                    Kind::Message
                },
                package: file.package().to_owned(),
                names,
                message: Some(m),
                file: file.name().to_owned(),
            },
        );
    }
}

const EMPTY: &str = ".google.protobuf.Empty";

struct Generator<'g> {
    index: &'g TypeIndex<'g>,
    nexus: &'g str,
    serde: &'g str,
    package: &'g str,
    out: String,
}

/// Source paths (descriptor.proto field numbers) of the items comments attach to.
const MESSAGE_TYPE: i32 = 4;
const ENUM_TYPE: i32 = 5;
const SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

struct Comments(HashMap<Vec<i32>, String>);

impl Comments {
    fn of(file: &FileDescriptorProto) -> Self {
        let mut map = HashMap::new();
        if let Some(info) = &file.source_code_info {
            for loc in &info.location {
                if let Some(c) = &loc.leading_comments {
                    map.insert(loc.path.clone(), c.clone());
                } else if let Some(c) = &loc.trailing_comments {
                    map.insert(loc.path.clone(), c.clone());
                }
            }
        }
        Comments(map)
    }

    fn get(&self, path: &[i32]) -> Option<&str> {
        self.0
            .get(path)
            .map(String::as_str)
            .filter(|c| !c.trim().is_empty())
    }
}

impl Generator<'_> {
    fn package(mut self, files: &[&FileDescriptorProto]) -> Result<String, CodegenError> {
        let names: Vec<&str> = files.iter().map(|f| f.name()).collect();
        let _ = writeln!(
            self.out,
            "// @generated by trellis-codegen from {}. Do not edit: change the .proto and \
             generate again.",
            names.join(", ")
        );
        for file in files {
            match file.syntax() {
                "proto3" => {}
                other => {
                    return Err(CodegenError::Unsupported {
                        file: file.name().to_owned(),
                        item: "syntax".into(),
                        reason: format!(
                            "only proto3 files are supported (this one is {})",
                            if other.is_empty() { "proto2" } else { other }
                        ),
                    });
                }
            }
            let comments = Comments::of(file);
            for (i, m) in file.message_type.iter().enumerate() {
                self.message(file, &comments, m, &[], &[MESSAGE_TYPE, i as i32], 0)?;
            }
            for (i, e) in file.enum_type.iter().enumerate() {
                self.enumeration(file, &comments, e, &[], &[ENUM_TYPE, i as i32], 0);
            }
            for (i, s) in file.service.iter().enumerate() {
                self.service(file, &comments, s, &[SERVICE, i as i32])?;
            }
        }
        Ok(self.out)
    }

    fn full_name(&self, parents: &[String], name: &str) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if !self.package.is_empty() {
            parts.push(self.package);
        }
        parts.extend(parents.iter().map(String::as_str));
        parts.push(name);
        parts.join(".")
    }

    fn doc(&mut self, depth: usize, comment: Option<&str>, fallback: &str) {
        let pad = "    ".repeat(depth);
        match comment {
            Some(c) => {
                for line in c.trim_end().lines() {
                    let line = line.strip_prefix(' ').unwrap_or(line).trim_end();
                    if line.is_empty() {
                        let _ = writeln!(self.out, "{pad}///");
                    } else {
                        let _ = writeln!(self.out, "{pad}/// {line}");
                    }
                }
            }
            None => {
                let _ = writeln!(self.out, "{pad}/// {fallback}");
            }
        }
    }

    fn message(
        &mut self,
        file: &FileDescriptorProto,
        comments: &Comments,
        m: &DescriptorProto,
        parents: &[String],
        path: &[i32],
        depth: usize,
    ) -> Result<(), CodegenError> {
        if m.options.as_ref().and_then(|o| o.map_entry) == Some(true) {
            return Ok(());
        }
        let pad = "    ".repeat(depth);
        let full = self.full_name(parents, m.name());
        let rust_name = type_ident(m.name());
        self.out.push('\n');
        self.doc(depth, comments.get(path), &format!("The message `{full}`."));
        let s = self.serde;
        let _ = writeln!(
            self.out,
            "{pad}#[derive(Clone, Debug, Default, PartialEq, {s}::Serialize, {s}::Deserialize)]"
        );
        let _ = writeln!(self.out, "{pad}#[serde(crate = \"{s}\", default)]");
        if m.field.is_empty() {
            let _ = writeln!(self.out, "{pad}pub struct {rust_name} {{}}");
        } else {
            let _ = writeln!(self.out, "{pad}pub struct {rust_name} {{");
            let mut my_path = parents.to_vec();
            my_path.push(m.name().to_owned());
            for (i, field) in m.field.iter().enumerate() {
                let mut field_path = path.to_vec();
                field_path.extend([MESSAGE_FIELD, i as i32]);
                self.field(
                    file,
                    comments,
                    &full,
                    &my_path,
                    field,
                    &field_path,
                    depth + 1,
                )?;
            }
            let _ = writeln!(self.out, "{pad}}}");
        }
        let has_nested = m
            .nested_type
            .iter()
            .any(|n| n.options.as_ref().and_then(|o| o.map_entry) != Some(true))
            || !m.enum_type.is_empty();
        if has_nested {
            let module = module_ident(m.name());
            self.out.push('\n');
            let _ = writeln!(self.out, "{pad}/// The types nested in [`{rust_name}`].");
            let _ = writeln!(self.out, "{pad}pub mod {module} {{");
            let mut nested_parents = parents.to_vec();
            nested_parents.push(m.name().to_owned());
            for (i, n) in m.nested_type.iter().enumerate() {
                let mut p = path.to_vec();
                p.extend([MESSAGE_NESTED, i as i32]);
                self.message(file, comments, n, &nested_parents, &p, depth + 1)?;
            }
            for (i, e) in m.enum_type.iter().enumerate() {
                let mut p = path.to_vec();
                p.extend([MESSAGE_ENUM, i as i32]);
                self.enumeration(file, comments, e, &nested_parents, &p, depth + 1);
            }
            let _ = writeln!(self.out, "{pad}}}");
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn field(
        &mut self,
        file: &FileDescriptorProto,
        comments: &Comments,
        message: &str,
        message_names: &[String],
        field: &FieldDescriptorProto,
        path: &[i32],
        depth: usize,
    ) -> Result<(), CodegenError> {
        let pad = "    ".repeat(depth);
        let item = format!("{message}.{}", field.name());
        let unsupported = |reason: &str| CodegenError::Unsupported {
            file: file.name().to_owned(),
            item: item.clone(),
            reason: reason.to_owned(),
        };
        if field.oneof_index.is_some() && !field.proto3_optional() {
            return Err(unsupported(
                "oneof fields are not supported; use separate optional fields",
            ));
        }
        // Code is emitted from inside the message's module level: `depth - 1` modules deep.
        let module_depth = message_names.len() - 1;
        let ty = match (field.label(), field.r#type()) {
            (Label::Repeated, Type::Message)
                if self.lookup(field.type_name()).map(|t| t.kind) == Some(Kind::MapEntry) =>
            {
                let entry = self
                    .lookup(field.type_name())
                    .and_then(|t| t.message)
                    .ok_or_else(|| unsupported("unknown map entry"))?;
                let key = entry
                    .field
                    .iter()
                    .find(|f| f.number() == 1)
                    .ok_or_else(|| unsupported("map entry without key"))?;
                let value = entry
                    .field
                    .iter()
                    .find(|f| f.number() == 2)
                    .ok_or_else(|| unsupported("map entry without value"))?;
                format!(
                    "::std::collections::BTreeMap<{}, {}>",
                    self.single_type(key, module_depth, message_names, &unsupported)?,
                    self.single_type(value, module_depth, message_names, &unsupported)?
                )
            }
            (Label::Repeated, _) => format!(
                "::std::vec::Vec<{}>",
                self.single_type(field, module_depth, message_names, &unsupported)?
            ),
            (_, Type::Message) => format!(
                "::std::option::Option<{}>",
                self.single_type(field, module_depth, message_names, &unsupported)?
            ),
            _ if field.proto3_optional() => format!(
                "::std::option::Option<{}>",
                self.single_type(field, module_depth, message_names, &unsupported)?
            ),
            _ => self.single_type(field, module_depth, message_names, &unsupported)?,
        };
        self.doc(
            depth,
            comments.get(path),
            &format!("The field `{}` (number {}).", field.name(), field.number()),
        );
        let ident = field_ident(field.name());
        if ident.trim_start_matches("r#") != field.name() {
            let _ = writeln!(self.out, "{pad}#[serde(rename = \"{}\")]", field.name());
        }
        // Callers whose SDK writes messages as proto3 JSON (`json/protobuf`, e.g. Go's default
        // for proto types) name fields in lowerCamelCase: read that name too.
        let json_name = if field.json_name().is_empty() {
            lower_camel(field.name())
        } else {
            field.json_name().to_owned()
        };
        if json_name != field.name() {
            let _ = writeln!(self.out, "{pad}#[serde(alias = \"{json_name}\")]");
        }
        let _ = writeln!(self.out, "{pad}pub {ident}: {ty},");
        Ok(())
    }

    /// The Rust type of one value of a field (no repetition, no option).
    fn single_type(
        &self,
        field: &FieldDescriptorProto,
        module_depth: usize,
        message_names: &[String],
        unsupported: &dyn Fn(&str) -> CodegenError,
    ) -> Result<String, CodegenError> {
        Ok(match field.r#type() {
            Type::Double => "f64".into(),
            Type::Float => "f32".into(),
            Type::Int32 | Type::Sint32 | Type::Sfixed32 => "i32".into(),
            Type::Int64 | Type::Sint64 | Type::Sfixed64 => "i64".into(),
            Type::Uint32 | Type::Fixed32 => "u32".into(),
            Type::Uint64 | Type::Fixed64 => "u64".into(),
            Type::Bool => "bool".into(),
            Type::String => "::std::string::String".into(),
            Type::Bytes => "::std::vec::Vec<u8>".into(),
            Type::Group => return Err(unsupported("groups are not supported")),
            Type::Message | Type::Enum => {
                let info = self
                    .lookup(field.type_name())
                    .ok_or_else(|| unsupported(&format!("unknown type `{}`", field.type_name())))?;
                if info.package != self.package {
                    return Err(unsupported(&format!(
                        "`{}` is from another package (`{}`, in {}); only types of this \
                         package can be used",
                        field.type_name().trim_start_matches('.'),
                        info.package,
                        info.file
                    )));
                }
                let path = self.rust_path(info, module_depth);
                // A message that contains itself needs a box.
                if info.kind == Kind::Message && info.names.as_slice() == message_names {
                    format!("::std::boxed::Box<{path}>")
                } else {
                    path
                }
            }
        })
    }

    fn lookup(&self, type_name: &str) -> Option<&TypeInfo<'_>> {
        self.index.types.get(type_name)
    }

    /// The path of a type of this package, from code `module_depth` modules below the package.
    fn rust_path(&self, info: &TypeInfo<'_>, module_depth: usize) -> String {
        let mut parts: Vec<String> = vec!["super".to_owned(); module_depth];
        let (last, modules) = info.names.split_last().expect("a type has a name");
        parts.extend(modules.iter().map(|m| module_ident(m)));
        parts.push(type_ident(last));
        parts.join("::")
    }

    fn enumeration(
        &mut self,
        _file: &FileDescriptorProto,
        comments: &Comments,
        e: &EnumDescriptorProto,
        parents: &[String],
        path: &[i32],
        depth: usize,
    ) {
        let pad = "    ".repeat(depth);
        let full = self.full_name(parents, e.name());
        let rust_name = type_ident(e.name());
        let s = self.serde;
        self.out.push('\n');
        self.doc(depth, comments.get(path), &format!("The enum `{full}`."));
        let _ = writeln!(
            self.out,
            "{pad}#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, \
             {s}::Serialize, {s}::Deserialize)]"
        );
        let _ = writeln!(self.out, "{pad}#[serde(crate = \"{s}\")]");
        let _ = writeln!(self.out, "{pad}pub enum {rust_name} {{");
        let prefix = format!("{}_", e.name().to_shouty_snake_case());
        let mut seen = Vec::new();
        for (i, v) in e.value.iter().enumerate() {
            let stripped = v
                .name()
                .strip_prefix(&prefix)
                .filter(|rest| !rest.is_empty() && !rest.starts_with(|c: char| c.is_ascii_digit()))
                .unwrap_or(v.name());
            let variant = type_ident(&stripped.to_upper_camel_case());
            if seen.contains(&variant) {
                // An alias (`allow_alias`): the first name stands for the value.
                continue;
            }
            seen.push(variant.clone());
            let mut p = path.to_vec();
            p.extend([ENUM_VALUE, i as i32]);
            self.doc(
                depth + 1,
                comments.get(&p),
                &format!("`{}` ({}).", v.name(), v.number()),
            );
            if i == 0 {
                let _ = writeln!(self.out, "{pad}    #[default]");
            }
            let _ = writeln!(self.out, "{pad}    #[serde(rename = \"{}\")]", v.name());
            let _ = writeln!(self.out, "{pad}    {variant},");
        }
        let _ = writeln!(self.out, "{pad}}}");
    }

    fn service(
        &mut self,
        file: &FileDescriptorProto,
        comments: &Comments,
        s: &ServiceDescriptorProto,
        path: &[i32],
    ) -> Result<(), CodegenError> {
        let name = type_ident(s.name());
        let nexus = self.nexus;
        let mut ops = Vec::new();
        for (i, m) in s.method.iter().enumerate() {
            let item = format!("{}.{}", self.full_name(&[], s.name()), m.name());
            let unsupported = |reason: String| CodegenError::Unsupported {
                file: file.name().to_owned(),
                item: item.clone(),
                reason,
            };
            if m.client_streaming() || m.server_streaming() {
                return Err(unsupported(
                    "streaming rpcs cannot be Nexus operations".into(),
                ));
            }
            let input = self.operation_type(m.input_type(), &unsupported)?;
            let output = self.operation_type(m.output_type(), &unsupported)?;
            let constant = m.name().to_shouty_snake_case();
            if ops
                .iter()
                .any(|(c, ..): &(String, _, _, _, _)| *c == constant)
            {
                return Err(unsupported(format!(
                    "two operations map to the constant `{constant}`"
                )));
            }
            let mut p = path.to_vec();
            p.extend([SERVICE_METHOD, i as i32]);
            ops.push((constant, m.name().to_owned(), input, output, p));
        }
        self.out.push('\n');
        self.doc(
            0,
            comments.get(path),
            &format!("The Nexus service `{}`.", s.name()),
        );
        let _ = writeln!(self.out, "#[derive(Clone, Copy, Debug, Default)]");
        let _ = writeln!(self.out, "pub struct {name};");
        self.out.push('\n');
        let _ = writeln!(self.out, "impl {nexus}::Service for {name} {{");
        let _ = writeln!(self.out, "    const NAME: &'static str = {:?};", s.name());
        let _ = writeln!(self.out, "}}");
        self.out.push('\n');
        let _ = writeln!(self.out, "impl {name} {{");
        for (i, (constant, op, input, output, p)) in ops.iter().enumerate() {
            if i > 0 {
                self.out.push('\n');
            }
            self.doc(1, comments.get(p), &format!("The operation `{op}`."));
            let _ = writeln!(
                self.out,
                "    pub const {constant}: {nexus}::Operation<{input}, {output}> =\n        \
                 {nexus}::Operation::new({op:?});"
            );
        }
        let _ = writeln!(self.out, "}}");
        Ok(())
    }

    fn operation_type(
        &self,
        type_name: &str,
        unsupported: &dyn Fn(String) -> CodegenError,
    ) -> Result<String, CodegenError> {
        if type_name == EMPTY {
            return Ok("()".into());
        }
        let info = self
            .lookup(type_name)
            .ok_or_else(|| unsupported(format!("unknown type `{type_name}`")))?;
        if info.package != self.package {
            return Err(unsupported(format!(
                "`{}` is from another package (`{}`); only messages of this package and \
                 google.protobuf.Empty can be inputs and outputs",
                type_name.trim_start_matches('.'),
                info.package
            )));
        }
        Ok(self.rust_path(info, 0))
    }
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "static", "struct", "trait", "true", "type", "unsafe", "use", "where",
    "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv", "try",
    "typeof", "unsized", "virtual", "yield",
];

fn escape(ident: String) -> String {
    match ident.as_str() {
        "self" | "super" | "crate" | "Self" => format!("{ident}_"),
        s if KEYWORDS.contains(&s) => format!("r#{ident}"),
        _ => ident,
    }
}

/// The proto3 JSON name of a field: lowerCamelCase of its name (`city_name` → `cityName`).
fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn field_ident(name: &str) -> String {
    escape(name.to_snake_case())
}

fn module_ident(name: &str) -> String {
    escape(name.to_snake_case())
}

fn type_ident(name: &str) -> String {
    escape(name.to_upper_camel_case())
}

#[cfg(test)]
mod tests;
