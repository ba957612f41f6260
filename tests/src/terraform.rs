//! `terraform/` parsed with hcl-rs, for the offline Terraform tests (`tests/tests/terraform*.rs`):
//! the module's resources, data sources, variables and locals by name, the few Terraform functions
//! its expressions call (for `hcl::eval`), and a context that evaluates a resource's expression with
//! chosen variables, the way `terraform plan` would.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail, ensure};
use hcl::eval::{Context, Evaluate};
use hcl::{Block, Body, Expression, Value};

use crate::emulators::repo_root;

/// The `.tf` files of one directory, by block.
pub struct Module {
    /// (type, name) → block body, for every `resource`.
    pub resources: BTreeMap<(String, String), Body>,
    /// (type, name) → block body, for every `data` source.
    pub data: BTreeMap<(String, String), Body>,
    pub variables: BTreeMap<String, Body>,
    pub locals: BTreeMap<String, Expression>,
    /// The whole module, formatted, for text searches.
    pub text: String,
}

fn label(b: &Block, i: usize) -> String {
    b.labels()
        .get(i)
        .map(|l| l.as_str().to_owned())
        .unwrap_or_default()
}

/// `terraform/` of this repository.
pub fn load_module() -> Result<Module> {
    load_dir(&repo_root().join("terraform"))
}

/// The `.tf` files of `dir`.
pub fn load_dir(dir: &Path) -> Result<Module> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    let sources = files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|src| (path.display().to_string(), src))
                .with_context(|| format!("reading {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let m = Module::parse(&sources)?;
    ensure!(!m.resources.is_empty(), "no resources in {}", dir.display());
    Ok(m)
}

impl Module {
    /// A module from (file name, source) pairs: a planted copy in a test is parsed like the real one.
    pub fn parse(sources: &[(String, String)]) -> Result<Module> {
        let mut m = Module {
            resources: BTreeMap::new(),
            data: BTreeMap::new(),
            variables: BTreeMap::new(),
            locals: BTreeMap::new(),
            text: String::new(),
        };
        for (name, src) in sources {
            let body: Body = hcl::parse(src).with_context(|| format!("parsing {name}"))?;
            // Formatted from the parsed body: expressions only, no comments.
            m.text
                .push_str(&hcl::format::to_string(&body).unwrap_or_default());
            for block in body.blocks() {
                let key = (label(block, 0), label(block, 1));
                match block.identifier() {
                    "resource" => {
                        m.resources.insert(key, block.body().clone());
                    }
                    "data" => {
                        m.data.insert(key, block.body().clone());
                    }
                    "variable" => {
                        m.variables.insert(label(block, 0), block.body().clone());
                    }
                    "locals" => {
                        for a in block.body().attributes() {
                            m.locals.insert(a.key().to_owned(), a.expr().clone());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(m)
    }

    pub fn resource(&self, ty: &str, name: &str) -> Result<&Body> {
        self.resources
            .get(&(ty.to_owned(), name.to_owned()))
            .with_context(|| format!("no resource {ty}.{name}"))
    }

    pub fn data_source(&self, ty: &str, name: &str) -> Result<&Body> {
        self.data
            .get(&(ty.to_owned(), name.to_owned()))
            .with_context(|| format!("no data source {ty}.{name}"))
    }

    pub fn variable(&self, name: &str) -> Result<&Body> {
        self.variables
            .get(name)
            .with_context(|| format!("no variable {name}"))
    }

    /// Every variable's default (null where it has none), overridden by `set`: the `var` object
    /// of a `terraform plan` with those `-var`s.
    pub fn vars(&self, set: &[(&str, Value)]) -> Result<hcl::Map<String, Value>> {
        let empty = Context::new();
        let mut vars = hcl::Map::new();
        for (name, body) in &self.variables {
            let default = match body.attributes().find(|a| a.key() == "default") {
                Some(a) => a
                    .expr()
                    .evaluate(&empty)
                    .map_err(|e| anyhow::anyhow!("evaluating var.{name}'s default: {e}"))?,
                None => Value::Null,
            };
            vars.insert(name.clone(), default);
        }
        for (name, value) in set {
            ensure!(vars.contains_key(*name), "no variable {name}");
            vars.insert((*name).to_owned(), value.clone());
        }
        Ok(vars)
    }

    /// A context with `var` (defaults overridden by `set`), the functions below, `path.module`,
    /// a stand-in project number (`data.google_project.this.number`, known only once applied)
    /// and the named locals evaluated in order (each may read those before it); `each` is the
    /// entry `key` of `local.services` when `each` names one.
    pub fn context(
        &self,
        set: &[(&str, Value)],
        locals: &[&str],
        each: Option<&str>,
    ) -> Result<Context<'static>> {
        let mut ctx = Context::new();
        functions::declare(&mut ctx);
        ctx.declare_var("var", Value::Object(self.vars(set)?));
        ctx.declare_var(
            "path",
            hcl::value!({ module = (repo_root().join("terraform").display().to_string()) }),
        );
        ctx.declare_var(
            "data",
            hcl::value!({ google_project = { this = { number = "123456789012" } } }),
        );
        let mut values = hcl::Map::new();
        for name in locals {
            ctx.declare_var("local", Value::Object(values.clone()));
            let value = self
                .locals
                .get(*name)
                .with_context(|| format!("no local.{name}"))?
                .evaluate(&ctx)
                .map_err(|e| anyhow::anyhow!("evaluating local.{name}: {e}"))?;
            values.insert((*name).to_owned(), value);
        }
        if let Some(key) = each {
            let value = values
                .get("services")
                .and_then(|s| s.as_object())
                .and_then(|s| s.get(key))
                .with_context(|| format!("each: no local.services[{key:?}] (evaluate `services`)"))?
                .clone();
            ctx.declare_var("each", hcl::value!({ key = (key), value = (value) }));
        }
        ctx.declare_var("local", Value::Object(values));
        Ok(ctx)
    }
}

/// An expression as formatted HCL.
pub fn fmt(e: &Expression) -> String {
    hcl::format::to_string(e).unwrap_or_default()
}

/// The formatted expression of attribute `key` of `body`.
pub fn attr(body: &Body, key: &str) -> Result<String> {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| fmt(a.expr()))
        .with_context(|| format!("no attribute `{key}`"))
}

/// The expression of attribute `key` of `body`.
pub fn expr<'a>(body: &'a Body, key: &str) -> Result<&'a Expression> {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
        .with_context(|| format!("no attribute `{key}`"))
}

/// The first `ident` block of `body`.
pub fn block<'a>(body: &'a Body, ident: &str) -> Result<&'a Body> {
    body.blocks()
        .find(|b| b.identifier() == ident)
        .map(Block::body)
        .with_context(|| format!("no `{ident}` block"))
}

/// The strings of an HCL list expression such as `["a", "b"]`.
pub fn string_list(e: &Expression) -> Result<Vec<String>> {
    match e {
        Expression::Array(items) => items
            .iter()
            .map(|i| match i {
                Expression::String(s) => Ok(s.clone()),
                other => bail!("not a string: {}", fmt(other)),
            })
            .collect(),
        other => bail!("not a list: {}", fmt(other)),
    }
}

/// The `condition`s of a body's `lifecycle { precondition | postcondition { … } }` blocks.
pub fn conditions<'a>(body: &'a Body, kind: &str) -> Vec<&'a Expression> {
    body.blocks()
        .filter(|b| b.identifier() == "lifecycle")
        .flat_map(|l| l.body().blocks())
        .filter(|b| b.identifier() == kind)
        .filter_map(|b| expr(b.body(), "condition").ok())
        .collect()
}

/// `e` evaluated in `ctx`, as a bool.
pub fn holds(e: &Expression, ctx: &Context) -> Result<bool> {
    let v = e
        .evaluate(ctx)
        .map_err(|err| anyhow::anyhow!("evaluating {}: {err}", fmt(e)))?;
    v.as_bool()
        .with_context(|| format!("{} is not a bool: {v}", fmt(e)))
}

/// The few Terraform functions the module's expressions call, for `hcl::eval`.
pub mod functions {
    use hcl::Value;
    use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};

    fn args(a: &FuncArgs) -> Vec<&Value> {
        a.positional_args().chain(a.variadic_args()).collect()
    }

    fn number(v: &Value) -> Result<f64, String> {
        v.as_f64().ok_or_else(|| format!("not a number: {v}"))
    }

    fn string(v: &Value) -> Result<&str, String> {
        v.as_str().ok_or_else(|| format!("not a string: {v}"))
    }

    fn concat(a: FuncArgs) -> Result<Value, String> {
        let mut out = Vec::new();
        for list in args(&a) {
            out.extend(list.as_array().ok_or("concat takes lists")?.iter().cloned());
        }
        Ok(Value::Array(out))
    }

    fn merge(a: FuncArgs) -> Result<Value, String> {
        let mut out = hcl::Map::new();
        for map in args(&a) {
            out.extend(map.as_object().ok_or("merge takes objects")?.clone());
        }
        Ok(Value::Object(out))
    }

    fn join(a: FuncArgs) -> Result<Value, String> {
        let [sep, list] = args(&a)[..] else {
            return Err("join takes two arguments".into());
        };
        let parts: Vec<&str> = (list.as_array().ok_or("join takes a list")?)
            .iter()
            .map(|v| v.as_str().ok_or("join takes strings"))
            .collect::<Result<_, _>>()?;
        Ok(Value::from(parts.join(sep.as_str().unwrap_or_default())))
    }

    fn length(a: FuncArgs) -> Result<Value, String> {
        let v = args(&a)[0];
        let n = match v {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::String(s) => s.chars().count(),
            _ => return Err(format!("length of {v}")),
        };
        Ok(Value::from(n as u64))
    }

    fn slice(a: FuncArgs) -> Result<Value, String> {
        let [list, from, to] = args(&a)[..] else {
            return Err("slice takes three arguments".into());
        };
        let list = list.as_array().ok_or("slice takes a list")?;
        let (from, to) = (number(from)? as usize, number(to)? as usize);
        Ok(Value::Array(
            list.get(from..to).ok_or("slice out of range")?.to_vec(),
        ))
    }

    fn lookup(a: FuncArgs) -> Result<Value, String> {
        let [map, key, default] = args(&a)[..] else {
            return Err("lookup takes three arguments here".into());
        };
        let map = map.as_object().ok_or("lookup takes an object")?;
        Ok(map
            .get(key.as_str().unwrap_or_default())
            .cloned()
            .unwrap_or_else(|| default.clone()))
    }

    fn floor(a: FuncArgs) -> Result<Value, String> {
        Ok(Value::from(number(args(&a)[0])?.floor() as i64))
    }

    /// The value itself: what Terraform would encode is checked as a value.
    fn jsonencode(a: FuncArgs) -> Result<Value, String> {
        Ok(args(&a)[0].clone())
    }

    fn jsondecode(a: FuncArgs) -> Result<Value, String> {
        let text = string(args(&a)[0])?;
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        hcl::to_value(json).map_err(|e| e.to_string())
    }

    fn file(a: FuncArgs) -> Result<Value, String> {
        let path = string(args(&a)[0])?;
        std::fs::read_to_string(path)
            .map(Value::from)
            .map_err(|e| format!("{path}: {e}"))
    }

    /// Terraform's `regex` for a pattern without capture groups: the first match.
    fn regex(a: FuncArgs) -> Result<Value, String> {
        let [pattern, s] = args(&a)[..] else {
            return Err("regex takes two arguments".into());
        };
        let re = regex::Regex::new(string(pattern)?).map_err(|e| e.to_string())?;
        if re.captures_len() > 1 {
            return Err("regex with capture groups is not implemented here".into());
        }
        re.find(string(s)?)
            .map(|m| Value::from(m.as_str()))
            .ok_or_else(|| "regex: no match".to_string())
    }

    fn endswith(a: FuncArgs) -> Result<Value, String> {
        let [s, suffix] = args(&a)[..] else {
            return Err("endswith takes two arguments".into());
        };
        Ok(Value::Bool(string(s)?.ends_with(string(suffix)?)))
    }

    fn contains(a: FuncArgs) -> Result<Value, String> {
        let [list, value] = args(&a)[..] else {
            return Err("contains takes two arguments".into());
        };
        let list = list.as_array().ok_or("contains takes a list")?;
        Ok(Value::Bool(list.contains(value)))
    }

    fn upper(a: FuncArgs) -> Result<Value, String> {
        Ok(Value::from(string(args(&a)[0])?.to_uppercase()))
    }

    fn trimsuffix(a: FuncArgs) -> Result<Value, String> {
        let [s, suffix] = args(&a)[..] else {
            return Err("trimsuffix takes two arguments".into());
        };
        let (s, suffix) = (string(s)?, string(suffix)?);
        Ok(Value::from(s.strip_suffix(suffix).unwrap_or(s)))
    }

    /// Terraform's `tonumber`: a number, or a string that is one (anything else is an error, as
    /// in Terraform).
    fn tonumber(a: FuncArgs) -> Result<Value, String> {
        match args(&a)[0] {
            Value::Number(n) => Ok(Value::Number(*n)),
            Value::String(s) => s
                .parse::<f64>()
                .ok()
                .and_then(hcl::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("tonumber: {s:?} is not a number")),
            v => Err(format!("tonumber of {v}")),
        }
    }

    /// Terraform's `coalesce`: the first argument that is neither null nor an empty string.
    fn coalesce(a: FuncArgs) -> Result<Value, String> {
        args(&a)
            .into_iter()
            .find(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
            .ok_or_else(|| "coalesce: no non-null, non-empty argument".to_string())
    }

    fn keys(a: FuncArgs) -> Result<Value, String> {
        let map = args(&a)[0].as_object().ok_or("keys takes an object")?;
        Ok(Value::Array(map.keys().cloned().map(Value::from).collect()))
    }

    fn values(a: FuncArgs) -> Result<Value, String> {
        let map = args(&a)[0].as_object().ok_or("values takes an object")?;
        Ok(Value::Array(map.values().cloned().collect()))
    }

    /// Terraform's `toset`, as a list without repeats.
    fn toset(a: FuncArgs) -> Result<Value, String> {
        let mut out: Vec<Value> = Vec::new();
        for v in args(&a)[0].as_array().ok_or("toset takes a list")? {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        Ok(Value::Array(out))
    }

    fn setsubtract(a: FuncArgs) -> Result<Value, String> {
        let [from, minus] = args(&a)[..] else {
            return Err("setsubtract takes two arguments".into());
        };
        let minus = minus.as_array().ok_or("setsubtract takes sets")?;
        Ok(Value::Array(
            (from.as_array().ok_or("setsubtract takes sets")?)
                .iter()
                .filter(|v| !minus.contains(v))
                .cloned()
                .collect(),
        ))
    }

    fn alltrue(a: FuncArgs) -> Result<Value, String> {
        let list = args(&a)[0].as_array().ok_or("alltrue takes a list")?;
        Ok(Value::Bool(list.iter().all(|v| v.as_bool() == Some(true))))
    }

    /// Terraform's `try` for arguments that evaluate: the first. (An argument that fails fails
    /// here, where Terraform would move on: a check never passes for that reason.)
    fn try_(a: FuncArgs) -> Result<Value, String> {
        args(&a)
            .first()
            .map(|v| (*v).clone())
            .ok_or_else(|| "try takes an argument".to_string())
    }

    pub fn declare(ctx: &mut Context) {
        let any = |f| FuncDef::builder().variadic_param(ParamType::Any).build(f);
        for (name, f) in [
            ("concat", concat as hcl::eval::Func),
            ("merge", merge),
            ("join", join),
            ("length", length),
            ("slice", slice),
            ("lookup", lookup),
            ("floor", floor),
            ("jsonencode", jsonencode),
            ("jsondecode", jsondecode),
            ("file", file),
            ("regex", regex),
            ("endswith", endswith),
            ("contains", contains),
            ("upper", upper),
            ("trimsuffix", trimsuffix),
            ("tonumber", tonumber),
            ("coalesce", coalesce),
            ("keys", keys),
            ("values", values),
            ("toset", toset),
            ("setsubtract", setsubtract),
            ("alltrue", alltrue),
            ("try", try_),
        ] {
            ctx.declare_func(name, any(f));
        }
    }
}
