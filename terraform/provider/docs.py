"""docs/terraform.md, generated from the provider's schema descriptions.

    python -m terraform.provider.docs          # rewrite docs/terraform.md
    python -m terraform.provider.docs --check  # exit 1 if it is out of date

The prose around the reference (installing, how shapes are written) lives
here too, so the whole page is one function of the code (a test keeps the
committed page equal to it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from terraform.provider import schema as s
from terraform.provider.mirror import EXECUTABLE
from terraform.provider.provider import DATA_SOURCES, FIELDS, PREFIX, RESOURCES, SOURCE

PAGE = Path(__file__).resolve().parents[2] / "docs" / "terraform.md"

INTRO = f"""\
# Terraform

Interlock's Terraform provider (`{SOURCE}`) manages a tenant's mesh
configuration through the public REST API ([api.md](api.md)) and nothing
else: the API key in the provider configuration decides the tenant, and every
write is validated by the API as if it came from any other client. It is
written in Python on the [`tf`](https://pypi.org/project/tf/) framework
(plugin protocol 6) and lives in `terraform/provider/`; a whole-mesh example is
in `terraform/examples/mesh/` and a CDKTF app declaring the same mesh in
`terraform/cdktf/`.

This page is generated from the provider's schema by
`python -m terraform.provider.docs` (`make terraform-docs`); edit the
descriptions in `terraform/provider/`, not this file.

## Installing the provider

There is no registry: `make terraform-provider` builds the provider and a
[filesystem mirror](https://developer.hashicorp.com/terraform/cli/config/config-file#filesystem_mirror)
of it in `terraform/build/mirror/`, and prints the CLI configuration to use.
The package holds a small launcher, `{EXECUTABLE}_v<version>`, that runs the
provider with the Python environment it was built from, so build it in the
environment where `pip install 'interlock[terraform]'` put the provider (and
rebuild it if that environment moves).

```sh
make terraform-provider       # or: python -m terraform.provider.mirror --out DIR
```

Then point Terraform at the mirror for this provider only, in
`~/.terraformrc` (or the file `TF_CLI_CONFIG_FILE` names):

```hcl
provider_installation {{
  filesystem_mirror {{
    path    = "/path/to/interlock/terraform/build/mirror"
    include = ["{SOURCE}"]
  }}
  direct {{
    exclude = ["{SOURCE}"]
  }}
}}
```

If the file already has a `provider_installation` block (for instance a
filesystem mirror of other providers), add the `filesystem_mirror` block above
to it and leave the rest alone; the `include` keeps it to this provider and
the `exclude` keeps other installation methods from looking for it elsewhere.
A configuration then asks for it as usual, and `terraform init` installs it
from the mirror and records its checksum in `.terraform.lock.hcl` (the package
is rebuilt byte for byte the same, so the lock file stays valid):

```hcl
terraform {{
  required_providers {{
    interlock = {{ source = "interlock/interlock" }}
  }}
}}

provider "interlock" {{
  api_url = "https://interlock.example.com"   # or INTERLOCK_API_URL
  # api_key: leave it out and set INTERLOCK_API_KEY
}}
```

## How the configuration is written

Argument names are the API's, which are Traffic Director's; a configuration
for Google's `google_network_services_http_route` or `google_compute_health_check`
reads almost the same. Where the shapes differ:

- **Nested objects are nested attributes, written with `=`.** The `tf`
  framework has no list-nested or single-nested blocks (only set-nested ones,
  which would lose the order of route rules), so nested API objects are
  protocol-6 nested attributes: one object is `action = {{ ... }}`, an ordered
  list is `rules = [{{ ... }}, {{ ... }}]`. Google's provider writes the same
  fields as blocks (`rules {{ action {{ ... }} }}`); here the `=` and the brackets
  are the only difference. Order matters where the API says it does: rules are
  tried in order, and a list's index is its position in the API.
  References read `interlock_http_route.x.rules[0].action.destinations[1].weight`.
- **Defaults are the API's and are planned.** An argument left out plans the
  value the API will store (e.g. `weight = 1`, `request_path = "/"`), so the
  plan shows what the proxies will get and the next plan is empty. Leaving an
  argument out resets it to that default; it does not keep an old value.
- **`endpoints` of an endpoint group is kept when left out.** Workloads may
  attach and detach their own endpoints through the API; leave `endpoints` out
  and Terraform leaves them alone. Write `endpoints = []` to remove them all.
- **Sets and JSON.** A route's `meshes` is a set (its order means nothing).
  Endpoint `metadata` is free-form JSON, written with `jsonencode()`.
  Header names in `set`/`add` of a header modifier may be written in any case;
  the API stores them lowercased and the state keeps your spelling.
- **Changes made elsewhere.** Every resource has an `etag`, the API's content
  hash. Updates and deletes send it as `If-Match`, so a change made through the
  API or the console after Terraform last read the resource is reported
  ("changed outside Terraform") and not overwritten; `terraform plan` then
  shows the difference and a new apply decides. A resource deleted outside
  Terraform is planned for creation again.
- **Errors name the attribute.** Choices are checked at plan time; everything
  else the API validates, and its field-level errors become diagnostics on the
  attribute they concern (`Invalid rules[0].matches[0].regex_match`).
- **Import by name.** Every resource imports by its name:
  `terraform import interlock_mesh.shop shop`, or an `import` block with
  `id = "shop"`. A node token's secret is shown by the API only when the
  token is created, so an imported `interlock_node_token` has a null `token`.
- **Names cannot change.** Changing a `name` (or a backend service's `mesh`,
  or any argument of a node token) replaces the resource.

## CDKTF

`terraform/cdktf/main.py` declares the example mesh with CDKTF 0.21 in Python.
CDKTF is sunset upstream, so the app needs neither the npm `cdktf` CLI nor
`cdktf get`: its constructs (`terraform/cdktf/interlock.py`) are thin
`TerraformResource`s whose arguments are checked against this provider's own
schema when the app runs, and nested objects are plain dicts and lists, as in
HCL. Plain Python synthesizes it (jsii runs CDKTF on node):

```sh
python terraform/cdktf/main.py                  # -> cdktf.out/stacks/shop/cdk.tf.json
cd cdktf.out/stacks/shop && terraform init && terraform apply
```

The synthesized JSON asks for the same provider, installed from the same
mirror, and keeps its state next to itself (`terraform.tfstate`).

## Tests

`tests/e2e/terraform/` drives the real `terraform` binary (marked slow)
against the API served on loopback by pytest-django's `live_server`, on the
test database: the example mesh is applied, re-planned empty, updated in
place, imported resource by resource into a fresh workspace (the state must
equal the applied one) and destroyed (the API then answers 404); a
replacement, a deletion outside Terraform, a concurrent edit and bad
attributes are each checked; the CDKTF app is synthesized and its output
applied. `tests/terraform/provider/` checks the schema against the API's
serializers (names, required arguments, defaults, choices) and this page
against the schema. Figures for 100 resources: [performance.md](performance.md).
"""


def type_of(f: s.Field) -> str:
    if f.nested:
        return "list of objects" if f.many else "object"
    kind = type(f.type).__name__.lower()
    element = getattr(f.type, "element_type", None)
    if element is not None:
        return f"{kind} of {type(element).__name__.lower()}s"
    if f.from_api is s.compact_json:
        return "string (JSON)"
    return {"bool": "boolean"}.get(kind, kind)


def presence(f: s.Field) -> str:
    if f.read_only:
        return "read-only"
    if f.required:
        return "**required**"
    return "optional, kept when left out" if f.kept else "optional"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(fields) -> str:
    rows = ["| Attribute | Type | Description |", "| --- | --- | --- |"]
    for path, _, f in s.walk(fields):
        rows.append(f"| `{path}` | {type_of(f)}, {presence(f)} | {cell(f.doc)} |")
    return "\n".join(rows) + "\n"


def resource_section(resource) -> str:
    type_name = PREFIX + resource.name
    return (
        f"### {type_name}\n\n{resource.description}\n\n{table(resource.fields)}\n"
        f"Import: `terraform import {type_name}.<label> <name>` (API: `/api/v1/{resource.collection}/<name>`).\n\n"
    )


def data_source_section(source) -> str:
    return f"### data.{PREFIX}{source.name}\n\n{source.description}\n\n{table(source.fields)}\n"


def render() -> str:
    return (
        INTRO
        + "\n## Provider arguments\n\n" + table(FIELDS)
        + "\n## Resources\n\n" + "".join(resource_section(r) for r in RESOURCES)
        + "## Data sources\n\n" + "".join(data_source_section(d) for d in DATA_SOURCES)
    ).rstrip("\n") + "\n"


def main(argv=None) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--check", action="store_true", help="exit 1 if docs/terraform.md differs from the schema")
    args = cli.parse_args(argv)
    text = render()
    if args.check:
        if PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run `python -m terraform.provider.docs`.", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"Wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
