"""Declaring a resource's attributes once, and everything derived from them:
the `tf` schema Terraform sees, the plan, the API request body, the state
built from an API response, configuration checks and the provider docs.

`tf` 1.2 has no object type and only set-nested blocks, so nested API objects
are protocol-6 nested attributes, declared here: `action = { ... }` for one
object and `rules = [{ ... }]` for an ordered list (see docs/terraform.md).

Every attribute is one of:

- required                    the configuration must set it;
- optional                    left out means null (the API's "not set");
- optional with a default     left out means the API's default, planned as such;
- optional and kept           left out means "whatever the API holds" (Terraform
                              does not manage it, e.g. endpoints workloads attach);
- read-only                   set by the API (etag, revision, secrets).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Callable

from tf import schema as tfschema
from tf import types as tftypes
from tf.gen import tfplugin_pb2 as pb
from tf.types import Unknown
from tf.utils import Diagnostics

NO_DEFAULT = object()
Path = list  # tf's attribute path: names, and (index,) steps into lists


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    description: str
    type: tftypes.TfType | None = None  # None: a nested object (see `nested`)
    required: bool = False
    default: Any = NO_DEFAULT
    kept: bool = False
    read_only: bool = False
    replace: bool = False
    sensitive: bool = False
    choices: tuple = ()
    nested: tuple[Field, ...] = ()
    many: bool = False  # with `nested`: an ordered list of objects, else one object
    # The API's canonical form of a value (e.g. header names lowercased): the
    # state keeps the configuration's spelling when the two have the same form.
    canonical: Callable[[Any], Any] | None = None
    # How the value travels in the API, when not as itself (JSON text <-> object).
    to_api: Callable[[Any], Any] | None = None
    from_api: Callable[[Any], Any] | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    @property
    def optional(self) -> bool:
        return not (self.required or self.read_only)

    @property
    def computed(self) -> bool:
        return self.read_only or self.kept or self.has_default

    def same(self, a, b) -> bool:
        """Whether two values are one value for the API."""
        if self.canonical is not None:
            return self.canonical(a) == self.canonical(b)
        if isinstance(self.type, tftypes.Number):
            return as_number(a) == as_number(b)
        if isinstance(self.type, tftypes.Set) and isinstance(a, list) and isinstance(b, list):
            return sorted(map(str, a)) == sorted(map(str, b))
        return a == b

    def to_tf(self) -> tfschema.Attribute:
        flags = dict(required=self.required, optional=self.optional, computed=self.computed,
                     sensitive=self.sensitive, description=self.doc)
        if self.nested:
            return NestedAttribute(self.name, tuple(f.to_tf() for f in self.nested), self.many, **flags)
        return tfschema.Attribute(self.name, self.type, **flags)

    @property
    def doc(self) -> str:
        """The description with what the schema knows added: choices, default."""
        text = self.description.strip()
        if self.choices:
            text += " One of " + ", ".join(f"`{c}`" for c in self.choices) + "."
        if self.has_default and self.nested:
            text += " Default: `[]`." if self.many else " Left out: every field at its default."
        elif self.has_default:
            text += f" Default: `{shown(self.default)}`."
        if self.replace:
            text += " Changing it replaces the resource."
        return text


def shown(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


# --- declaring fields ------------------------------------------------------------------------------------------


def string(name, description, **kwargs) -> Field:
    return Field(name, description, tftypes.String(), **kwargs)


def number(name, description, **kwargs) -> Field:
    return Field(name, description, tftypes.Number(), **kwargs)


def boolean(name, description, **kwargs) -> Field:
    return Field(name, description, tftypes.Bool(), **kwargs)


def strings(name, description, **kwargs) -> Field:
    return Field(name, description, tftypes.List(tftypes.String()), **kwargs)


def string_set(name, description, **kwargs) -> Field:
    return Field(name, description, tftypes.Set(tftypes.String()), **kwargs)


def string_map(name, description, **kwargs) -> Field:
    return Field(name, description, tftypes.Map(tftypes.String()), **kwargs)


def json_text(name, description, **kwargs) -> Field:
    """Free-form JSON, written with `jsonencode()`, as Terraform users do for policies."""
    return Field(name, description, tftypes.String(), canonical=parse_json, to_api=parse_json,
                 from_api=compact_json, **kwargs)


def single(name, description, fields, **kwargs) -> Field:
    return Field(name, description, nested=tuple(fields), many=False, **kwargs)


def many(name, description, fields, **kwargs) -> Field:
    return Field(name, description, nested=tuple(fields), many=True, **kwargs)


def as_number(value):
    """Terraform sends a number float64 cannot hold exactly (0.7) as its decimal text."""
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        return float(value)


def parse_json(text):
    return json.loads(text) if isinstance(text, str) else text


def compact_json(value) -> str:
    # jsonencode()'s form: sorted keys, no spaces, so a value read back equals the configuration.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def read_only(f: Field) -> Field:
    """The same attribute, as a data source shows it."""
    return dataclasses.replace(f, required=False, default=NO_DEFAULT, kept=False, replace=False, read_only=True)


def common(kind: str, plural: str) -> list[Field]:
    """The attributes every policy resource has."""
    return [
        string("name", f"The {kind}'s name, unique among the tenant's {plural}: an RFC 1035 label (1 to 63 "
                       "lowercase letters, digits and hyphens, starting with a letter). It is also the import ID.",
               required=True, replace=True),
        string("description", "Free text for people.", default=""),
        string_map("labels", "Key/value labels for your own bookkeeping (keys: lowercase letters, digits and "
                             "`-_./`, starting with a letter; values up to 63 characters).", default={}),
    ]


ETAG = string("etag", "The content hash of the stored policy. Updates and deletes send it as `If-Match`, so a "
                      "change made elsewhere since Terraform last read the resource is reported, not overwritten.",
              read_only=True)


# --- the tf side -----------------------------------------------------------------------------------------------


class NestedValue(tftypes.TfType):
    """Values of nested attributes: plain dicts and lists, as msgpack carries them."""

    def encode(self, value):
        return value

    def decode(self, value):
        return value

    def tf_type(self) -> bytes:
        return b'"dynamic"'  # never sent: nested attributes are described by `nested_type`


class NestedAttribute(tfschema.Attribute):
    """A protocol-6 nested attribute, which `tf` 1.2 cannot declare."""

    _nesting = {False: pb.Schema.Object.NestingMode.SINGLE, True: pb.Schema.Object.NestingMode.LIST}

    def __init__(self, name, attributes, many, **flags):
        super().__init__(name, NestedValue(), **flags)
        self.attributes = attributes
        self.many = many

    def to_pb(self) -> pb.Schema.Attribute:
        message = super().to_pb()
        message.ClearField("type")
        message.nested_type.CopyFrom(pb.Schema.Object(
            attributes=[attribute.to_pb() for attribute in self.attributes], nesting=self._nesting[self.many],
        ))
        return message


def tf_schema(fields, description: str) -> tfschema.Schema:
    return tfschema.Schema(version=0, attributes=[f.to_tf() for f in fields], description=description)


# --- planning --------------------------------------------------------------------------------------------------


def plan(fields, config: dict, prior: dict | None) -> dict:
    """The planned state: the configuration, with the API's defaults where it
    leaves a field out, and what the API computes unknown where a change will
    alter it."""
    planned = {}
    for f in fields:
        if f.read_only:
            continue
        value = config.get(f.name)
        if value is Unknown:
            planned[f.name] = Unknown
        elif value is not None:
            planned[f.name] = plan_nested(f, value)
        elif f.has_default:
            planned[f.name] = default_of(f)
        elif f.kept:
            planned[f.name] = prior.get(f.name) if prior else Unknown
        else:
            planned[f.name] = None
    unchanged = prior is not None and not changed_fields(fields, prior, planned)
    for f in fields:
        if f.read_only:
            planned[f.name] = prior.get(f.name) if unchanged else Unknown
    return planned


def default_of(f: Field):
    """A field's default; an object's default is the object of its fields' defaults."""
    if f.nested and not f.many and f.default == {}:
        return plan(f.nested, {}, None)
    return copy.deepcopy(f.default)


def plan_nested(f: Field, value):
    if not f.nested:
        return value
    if f.many:
        return [item if item is Unknown else plan(f.nested, item, None) for item in value]
    return plan(f.nested, value, None)


def changed_fields(fields, prior: dict, planned: dict) -> list[str]:
    return [f.name for f in fields if not f.read_only and not same_value(f, prior.get(f.name), planned.get(f.name))]


def same_value(f: Field, a, b) -> bool:
    if a is Unknown or b is Unknown:
        return False
    if f.nested and a is not None and b is not None:
        if f.many:
            return len(a) == len(b) and all(same_object(f.nested, x, y) for x, y in zip(a, b))
        return same_object(f.nested, a, b)
    return f.same(a, b)


def same_object(fields, a, b) -> bool:
    if a is Unknown or b is Unknown:
        return False
    return all(same_value(f, a.get(f.name), b.get(f.name)) for f in fields)


def replaced_paths(fields, prior: dict | None, planned: dict) -> list[Path]:
    if prior is None:
        return []
    return [[f.name] for f in fields if f.replace and not same_value(f, prior.get(f.name), planned.get(f.name))]


# --- the API side ----------------------------------------------------------------------------------------------


def request_body(fields, state: dict, top_level: bool = True) -> dict:
    """The API representation of a planned state. At the top level a null is
    sent (it clears a nullable field on replace); inside objects a null field
    is left out, which is how the API says "not set"."""
    body = {}
    for f in fields:
        if f.read_only:
            continue
        value = state.get(f.name)
        if value is Unknown:  # a kept field on create: the API's own value
            continue
        if value is None:
            if top_level:
                body[f.name] = None
            continue
        if f.nested:
            value = [request_body(f.nested, item, False) for item in value] if f.many else \
                request_body(f.nested, value, False)
        elif f.to_api:
            value = f.to_api(value)
        elif isinstance(f.type, tftypes.Number):
            value = as_number(value)
        body[f.name] = value
    return body


def state_from(fields, body: dict, reference: dict | None = None) -> dict:
    """The state of an API representation. Where `reference` (the plan or the
    prior state) holds the same value in another spelling, its spelling is kept."""
    reference = reference if isinstance(reference, dict) else {}
    state = {}
    for f in fields:
        value = body.get(f.name)
        if value is None and f.has_default:
            value = default_of(f)
        elif value is not None and f.nested:
            value = nested_state(f, value, reference.get(f.name))
        elif value is not None and f.from_api:
            value = f.from_api(value)
        mine = reference.get(f.name, Unknown)
        state[f.name] = mine if mine is not Unknown and not f.nested and f.same(mine, value) else value
    return state


def nested_state(f: Field, value, reference):
    if not f.many:
        return state_from(f.nested, value, reference)
    references = reference if isinstance(reference, list) and len(reference) == len(value) else [None] * len(value)
    return [state_from(f.nested, item, ref) for item, ref in zip(value, references)]


# --- checks and errors -----------------------------------------------------------------------------------------


def check_config(fields, config: dict | None, diags: Diagnostics, path: Path | None = None):
    """What the schema itself can refuse before anything is created: choices, JSON."""
    if not isinstance(config, dict):
        return
    path = path or []
    for f in fields:
        value = config.get(f.name)
        here = [*path, f.name]
        if value is None or value is Unknown:
            continue
        if f.choices and value not in f.choices:
            diags.add_error(f"Invalid {dotted(here)}",
                            f"{value!r} is not one of {', '.join(map(str, f.choices))}.", path=here)
        if f.to_api is parse_json:
            try:
                parse_json(value)
            except ValueError as error:
                diags.add_error(f"Invalid {dotted(here)}", f"This is not JSON ({error}); write it with "
                                                          "jsonencode().", path=here)
        if f.nested and f.many:
            for index, item in enumerate(value):
                check_config(f.nested, item, diags, [*here, (index,)])
        elif f.nested:
            check_config(f.nested, value, diags, here)


def attribute_path(fields, api_field: str) -> Path:
    """tf's path of an API error's field ("rules[0].action.timeout_sec"), cut
    where the API names something the schema does not have."""
    path: Path = []
    for part in api_field.replace("]", "").replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            if not path or not part[1:].isdigit():
                break
            path.append((int(part[1:]),))
            continue
        found = next((f for f in fields if f.name == part), None)
        if found is None:
            break
        path.append(part)
        fields = found.nested
    return path


def dotted(path: Path) -> str:
    text = ""
    for step in path:
        text += f"[{step[0]}]" if isinstance(step, tuple) else (f".{step}" if text else step)
    return text


def walk(fields, prefix: str = "", depth: int = 0):
    """Every field with its dotted path and depth, parents before children (for the docs)."""
    for f in fields:
        path = f"{prefix}.{f.name}" if prefix else f.name
        yield path, depth, f
        if f.nested:
            yield from walk(f.nested, path + ("[*]" if f.many else ""), depth + 1)

