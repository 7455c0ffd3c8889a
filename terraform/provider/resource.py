"""What every Interlock resource does the same way: CRUD and import by name
through the API, plans from the schema, and API errors as diagnostics on the
attribute they concern. A resource module declares its fields and collection."""
from __future__ import annotations

from typing import ClassVar

from tf.iface import (
    CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, Resource, UpdateContext,
)
from tf.utils import Diagnostics

from terraform.provider import schema
from terraform.provider.client import ApiError, Client


class Declared:
    """What resources and data sources share: a type name, a schema made of
    their declared fields, and the provider's API client."""

    name: ClassVar[str]  # the type name without the provider's prefix, e.g. "mesh"
    description: ClassVar[str]
    fields: ClassVar[tuple[schema.Field, ...]]

    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.name

    @classmethod
    def get_schema(cls):
        return schema.tf_schema(cls.fields, cls.description)

    @property
    def client(self) -> Client:
        return self.provider.client


class ApiResource(Declared, Resource):
    collection: ClassVar[str]  # the API collection, e.g. "meshes"

    def validate(self, diags: Diagnostics, type_name: str, config: dict):
        super().validate(diags, type_name, config)
        schema.check_config(self.fields, config, diags)

    def plan_change(self, ctx: PlanContext, prior: dict | None, config: dict) -> tuple[dict, list]:
        """The planned state and the paths whose change replaces the resource."""
        planned = schema.plan(self.fields, config, prior)
        return planned, schema.replaced_paths(self.fields, prior, planned)

    # --- CRUD and import --------------------------------------------------------------------------------------

    def create(self, ctx: CreateContext, planned: dict):
        try:
            body = self.client.create(self.collection, schema.request_body(self.fields, planned))
        except ApiError as error:
            self.report(ctx.diagnostics, error, planned["name"], "create")
            return None
        return self.state(body, planned)

    def read(self, ctx: ReadContext, current: dict):
        try:
            body = self.client.get(self.collection, current["name"])
        except ApiError as error:
            if error.status == 404:
                return None  # deleted outside Terraform: the next plan creates it again
            self.report(ctx.diagnostics, error, current["name"], "read")
            return current
        return self.state(body, current)

    def update(self, ctx: UpdateContext, current: dict, planned: dict):
        body = schema.request_body(self.fields, planned)
        try:
            body = self.client.replace(self.collection, current["name"], body, current.get("etag"))
        except ApiError as error:
            self.report(ctx.diagnostics, error, current["name"], "update")
            return current
        return self.state(body, planned)

    def delete(self, ctx: DeleteContext, current: dict):
        try:
            self.client.delete(self.collection, current["name"], current.get("etag"))
        except ApiError as error:
            if error.status == 404:
                return None
            self.report(ctx.diagnostics, error, current["name"], "delete")
            return current
        return None

    def import_(self, ctx: ImportContext, id: str):
        try:
            body = self.client.get(self.collection, id)
        except ApiError as error:
            if error.status == 404:
                ctx.diagnostics.add_error(
                    f"Cannot import {ctx.type_name}: there is no {self.collection} named {id!r}",
                    "The import ID of every Interlock resource is its name; the resource must belong to the "
                    "tenant of the provider's API key.")
            else:
                self.report(ctx.diagnostics, error, id, "import")
            return None
        return self.state(body, None)

    def state(self, body: dict, reference: dict | None) -> dict:
        return schema.state_from(self.fields, body, reference)

    # --- errors -----------------------------------------------------------------------------------------------

    def report(self, diags: Diagnostics, error: ApiError, name: str, action: str):
        what = f"{self.collection}/{name}"
        if error.status == 412:
            diags.add_error(
                f"{what} changed outside Terraform",
                f"It changed after Terraform last read it, so the {action} was refused (If-Match) and nothing was "
                "written. Run `terraform plan` to see the change, then apply again to overwrite it or adopt it "
                "in the configuration.")
            return
        if error.errors:
            for item in error.errors:
                field = str(item.get("field") or "")
                path = schema.attribute_path(self.fields, field)
                diags.add_error(
                    f"Invalid {field}" if field else f"Cannot {action} {what}",
                    f"{item.get('message', '')} (API error {item.get('code', error.code)}, status {error.status})",
                    path=path or None)
            return
        diags.add_error(f"Cannot {action} {what}", f"{error.message} (API error {error.code}, status {error.status})")
