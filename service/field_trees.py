"""Serializer field trees built once and lent out, request by request.

DRF gives every serializer instance fields of its own: it deep-copies the
declared fields (which runs each field's __init__ again), and each nested
serializer does the same when first used. An HTTP route's tree has 78
fields in all, and building it was about 15 % of a route write's CPU
(docs/performance.md). Nothing of a request stays in a tree once it is built:
a field finds its context, and so the tenant, through its root serializer,
which is always the request's own. So a tree can serve request after request
if its top-level fields are pointed at the new root.

A request borrows trees (LendFieldTrees, a middleware, opens the loan) and
they all come back when its response is rendered. A tree is never in two
serializers at once: a second serializer of one class in a request borrows
another tree, or builds one. Outside a request (a worker, a shell) a
serializer builds its own, as DRF does.
"""
from collections import defaultdict
from contextvars import ContextVar

from django.utils.functional import cached_property
from rest_framework import serializers

# Free trees by serializer class. list.pop and list.append are atomic, and a
# tree is only ever in one list or one request, so threads need no lock.
_free: defaultdict[type, list] = defaultdict(list)
# The trees the current request has borrowed; None outside a request.
_lent: ContextVar[list | None] = ContextVar("lent_field_trees", default=None)


class ReusedFieldTree(serializers.Serializer):
    """A serializer whose fields are borrowed (put it before DRF's classes)."""

    @cached_property
    def fields(self):
        return borrow(self)


def borrow(serializer):
    lent = _lent.get()
    if lent is None:
        return build(serializer)
    kind = type(serializer)
    try:
        tree = _free[kind].pop()
    except IndexError:
        tree = build(serializer)
    else:
        tree.serializer = serializer  # the BindingDict binds fields added later to it
        for field in tree.values():
            field.parent = serializer
    lent.append((kind, tree))
    return tree


def build(serializer):
    return serializers.Serializer.fields.func(serializer)


class LendFieldTrees:
    """Middleware: the trees a request borrows go back once its response is
    rendered (Django renders inside get_response), whatever the outcome."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        lent = []
        token = _lent.set(lent)
        try:
            return self.get_response(request)
        finally:
            _lent.reset(token)
            for kind, tree in lent:
                _free[kind].append(tree)
