#!/usr/bin/env python3
"""Extract the Terraform schema of the google provider's types that terraform/ uses, offline.

    python3 scripts/provider_schema.py WHEEL TERRAFORM_DIR OUT_JSON

WHEEL is PyPI's cdktf-cdktf-provider-google wheel (scripts/vendor-provider-schema.sh downloads
it). The wheel carries the package's jsii tarball (`_jsii/*.jsii.tgz`), which holds
  - the jsii assembly (`package/.jsii`, possibly a redirect to a gzip-compressed file): every
    resource and data-source class, the Terraform type it represents (in its doc link), and for
    every configuration struct which properties are optional;
  - the generated JavaScript (`package/lib/<type>/index.js`), whose `synthesizeHclAttributes` and
    `*ToHclTerraform` functions map each camelCase property to its Terraform name, say whether it is
    a nested block (`isBlock`), and whether a block is one struct (at most one block) or a list of
    them (`cdktf.listMapperHcl(...)`); whose classes read every referenceable attribute, computed
    ones included, by its Terraform name (`getStringAttribute('self_link')`,
    `new XList(this, "conditions", ...)`).

Only the resource and data-source types declared in TERRAFORM_DIR/**/*.tf are written, with the
names of all the provider's types (so a test can tell a misspelt type from one not vendored yet).
Output is deterministic (sorted keys); `date` is kept from an existing OUT_JSON when nothing else
changed, so re-running the script is idempotent.
"""

import datetime
import gzip
import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path

PKG = "@cdktf/provider-google"

# `resource "google_x" "name" {` / `data "google_x" "name" {` at the start of a line (terraform fmt).
TF_DECL = re.compile(r'^\s*(resource|data)\s+"?(google[a-z0-9_]*)"?\s+"?[\w-]+"?\s*\{', re.M)
# A resource or data-source class's summary: its registry link names its kind and type.
CLASS_DOC = re.compile(r"docs/(resources|data-sources)/\w+ (google_\w+)\}")
# One entry of `const attrs = { name: { value: ..., isBlock: ..., type: "...", storageClassType }`.
HCL_ATTR = re.compile(
    r"^\s+(\w+): \{\n\s+value: (.*),\n\s+isBlock: (true|false),\n\s+type: \"(\w+)\",\n"
    r"\s+storageClassType: \"(\w+)\",\n\s+\},?$",
    re.M,
)
READ_ATTR = re.compile(r"this\.(?:get\w*Attribute|interpolationForAttribute)\('([^']+)'\)")
NEW_ATTR = re.compile(r"new [\w.]+\(this, \"([^\"]+)\"")
PROP = re.compile(r"(?:this\._|struct\.)(\w+)")
MAPPER = re.compile(r"(?<![\w.])(\w+)ToHclTerraform\b")


def die(msg):
    sys.exit(f"provider_schema: {msg}")


def read_package(wheel):
    """The jsii tarball inside the wheel, opened."""
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if re.search(r"/_jsii/[^/]+\.jsii\.tgz$", n)]
        if len(names) != 1:
            die(f"{wheel}: expected one _jsii/*.jsii.tgz, found {names}")
        meta = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        version = None
        for line in z.read(meta[0]).decode().splitlines() if meta else []:
            if line.startswith("Version: "):
                version = line.split(": ", 1)[1].strip()
        return tarfile.open(fileobj=io.BytesIO(z.read(names[0])), mode="r:gz"), version


def member(tar, name):
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        die(f"{name} is not in the package's jsii tarball")
    return f.read()


def read_assembly(tar):
    raw = json.loads(member(tar, "package/.jsii"))
    # A compressed assembly is a redirect: {"schema": "jsii/file-redirect", "filename", "compression"}.
    if raw.get("schema") == "jsii/file-redirect":
        data = member(tar, "package/" + raw["filename"])
        if raw.get("compression") == "gzip":
            data = gzip.decompress(data)
        raw = json.loads(data)
    return raw


def units(js):
    """Top-level `class X extends ... {` and `function x(struct) {` bodies of a generated file."""
    out = {}
    for m in re.finditer(r"^(?:class (\w+) extends [\w.]+|function (\w+)\(struct\)) \{\n(.*?)^\}$",
                         js, re.M | re.S):
        out[m.group(1) or m.group(2)] = m.group(3)
    return out


def hcl_attrs(body, where):
    """[(terraform name, camelCase property, is block, type, nested struct or None, single)]."""
    if "const attrs = {};" in body:
        return []  # an empty block, e.g. `avro_format {}`
    start = body.find("const attrs = {")
    if start < 0:
        die(f"{where}: no `const attrs = {{`")
    end = re.compile(r"\n\s*\};").search(body, start)
    if not end:
        die(f"{where}: no end of `const attrs`")
    text = body[start:end.start() + 1]
    out = []
    for name, value, is_block, kind, _storage in HCL_ATTR.findall(text):
        prop = PROP.search(value)
        if not prop:
            die(f"{where}.{name}: no property in `{value}`")
        mapper = MAPPER.search(value)
        nested = mapper.group(1) if mapper else None
        if is_block == "true" and not nested:
            die(f"{where}.{name}: a block without its struct's mapper: `{value}`")
        single = "listMapperHcl" not in value
        out.append((name, prop.group(1), is_block == "true", kind, nested, single))
    if text.count("isBlock:") != len(out):
        die(f"{where}: read {len(out)} of {text.count('isBlock:')} attributes")
    return out


def referenceable(body):
    return set(READ_ATTR.findall(body)) | set(NEW_ATTR.findall(body))


class Extractor:
    def __init__(self, tar, assembly):
        self.tar = tar
        self.types = assembly["types"]
        self.js = {}

    def units_of(self, src_dir):
        if src_dir not in self.js:
            text = member(self.tar, f"package/lib/{src_dir}/index.js").decode()
            self.js[src_dir] = units(text)
        return self.js[src_dir]

    def optional(self, namespace, struct):
        fqn = f"{PKG}.{namespace}.{struct}"
        t = self.types.get(fqn)
        if t is None:
            die(f"{fqn} is not in the assembly")
        return {p["name"]: bool(p.get("optional")) for p in t.get("properties", [])}

    def block(self, namespace, src_dir, attrs, optional, refs, where):
        """The schema of one body: its arguments, computed-only attributes and nested blocks."""
        out = {"attributes": {}, "blocks": {}}
        code = self.units_of(src_dir)
        for name, prop, is_block, kind, nested, single in attrs:
            if prop not in optional:
                die(f"{where}.{name}: property {prop} is not in the jsii struct")
            required = not optional[prop]
            if not is_block:
                out["attributes"][name] = "required" if required else "optional"
                continue
            struct = nested[0].upper() + nested[1:]
            fn = f"{nested}ToHclTerraform"
            if fn not in code:
                die(f"{where}.{name}: no function {fn}")
            reference = code.get(f"{struct}OutputReference", "")
            b = self.block(namespace, src_dir, hcl_attrs(code[fn], fn),
                           self.optional(namespace, struct), referenceable(reference),
                           f"{where}.{name}")
            b["nesting"] = "single" if kind == "struct" else kind
            if required:
                b["min_items"] = 1
            if single:
                b["max_items"] = 1
            out["blocks"][name] = b
        for name in sorted(refs - set(out["attributes"]) - set(out["blocks"])):
            out["attributes"][name] = "computed_only"
        return out

    def resource(self, fqn):
        t = self.types[fqn]
        src_dir = t["locationInModule"]["filename"].removeprefix("src/").removesuffix("/index.ts")
        code = self.units_of(src_dir)
        cls = code.get(t["name"])
        if cls is None:
            die(f"class {t['name']} not in lib/{src_dir}/index.js")
        synth = cls[cls.find("synthesizeHclAttributes() {"):]
        return self.block(t["namespace"], src_dir, hcl_attrs(synth, t["name"]),
                          self.optional(t["namespace"], t["name"] + "Config"),
                          referenceable(cls), t["name"])


def used_types(tf_dir):
    used = {"resource": set(), "data": set()}
    for path in sorted(Path(tf_dir).rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        for kind, ty in TF_DECL.findall(path.read_text()):
            used[kind].add(ty)
    return used


def main():
    if len(sys.argv) != 4:
        die(__doc__.strip().splitlines()[2].strip())
    wheel, tf_dir, out_path = sys.argv[1:]
    tar, wheel_version = read_package(wheel)
    assembly = read_assembly(tar)
    package = json.loads(member(tar, "package/package.json"))
    provider = package.get("cdktf", {}).get("provider", {})
    if provider.get("name") != "registry.terraform.io/hashicorp/google":
        die(f"not the google provider's bindings: {provider}")

    classes = {"resources": {}, "data-sources": {}}
    for fqn, t in assembly["types"].items():
        if t.get("kind") != "class" or t.get("base") not in (
            "cdktf.TerraformResource", "cdktf.TerraformDataSource"):
            continue
        m = CLASS_DOC.search(t.get("docs", {}).get("summary", ""))
        if not m:
            die(f"{fqn}: no Terraform type in its summary")
        if m.group(2) in classes[m.group(1)]:
            die(f"{m.group(2)}: two classes")
        classes[m.group(1)][m.group(2)] = fqn

    used = used_types(tf_dir)
    ex = Extractor(tar, assembly)
    schema = {
        "source": {
            "package": "PyPI cdktf-cdktf-provider-google",
            "package_version": wheel_version or assembly["version"],
            "jsii_assembly": f"{assembly['name']} {assembly['version']}",
            "provider": provider["name"],
            "provider_version": provider["version"],
            "date": datetime.date.today().isoformat(),
            "regenerate": "scripts/vendor-provider-schema.sh",
            "types": "only the resource and data-source types declared in terraform/**/*.tf",
            "attributes": "required | optional (arguments) | computed_only (may be read, not set)",
            "blocks": "nesting single | list | set; min_items 1 if required; max_items 1 if one",
        },
        "all_resource_types": sorted(classes["resources"]),
        "all_data_source_types": sorted(classes["data-sources"]),
        "resources": {},
        "data_sources": {},
    }
    for kind, key, table in (("resource", "resources", "resources"),
                             ("data", "data_sources", "data-sources")):
        for ty in sorted(used[kind]):
            fqn = classes[table].get(ty)
            if fqn is None:
                # Left out: the Rust test reports the unknown type with its file and line.
                print(f"provider_schema: {kind} {ty} is not a type of the provider", file=sys.stderr)
                continue
            schema[key][ty] = ex.resource(fqn)

    out = Path(out_path)
    if out.exists():
        try:
            old = json.loads(out.read_text())
            same = dict(old, source=dict(old["source"], date=schema["source"]["date"]))
            if same == schema:
                schema["source"]["date"] = old["source"]["date"]
        except (ValueError, KeyError, TypeError):
            pass
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    n_blocks = 0

    def count(b):
        nonlocal n_blocks
        for nested in b["blocks"].values():
            n_blocks += 1
            count(nested)
    for key in ("resources", "data_sources"):
        for b in schema[key].values():
            count(b)
    print(f"provider_schema: {len(schema['resources'])} resource and "
          f"{len(schema['data_sources'])} data-source types ({n_blocks} nested block schemas) "
          f"from {schema['source']['package']} {schema['source']['package_version']} "
          f"(google {provider['version']}) -> {out}")


if __name__ == "__main__":
    main()
