"""Table-model objects made without SQLModel's constructor, for the hot paths of intake and dispatch.

`Model(**values)` on a SQLModel table model walks every field through pydantic's construction and sets
each one through SQLAlchemy's instrumentation: 50–110 µs per object on the benchmark machine (a case,
29 fields, about 106 µs), more than the INSERT that writes it. `new` builds the same object from a
per-model plan of defaults in a few µs, the way SQLAlchemy itself builds the objects it loads.

What callers may rely on:
- `new(Model, **values)` equals `Model(**values)` field for field: the given values, every other field's
  default (a factory is called each time), `model_fields_set` the given names. Like the constructor of a
  table model, it validates nothing. The object is transient: add it, or write it with `db.insert_now`.
- `loaded(session, Model, values)` is the object of a row this transaction has just written with those
  values (its key among them), persistent in `session` as if read back: no SELECT, no flush.
"""

from __future__ import annotations

import copy
from functools import cache, partial
from typing import Any, TypeVar

from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session

T = TypeVar("T")


def new(model: type[T], **values: Any) -> T:
    """A new, transient object of the table model `model`, as `model(**values)` makes it."""
    plain, factories = _defaults(model)
    obj = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]  # __new__ and the ORM's state
    state = obj.__dict__
    state.update(plain)
    for name, factory in factories:
        state[name] = factory()
    state.update(values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    return obj


def loaded(session: Session, model: type[T], values: dict[str, Any]) -> T:
    """The object of the row just written with `values` (its primary key among them), kept in `session`
    as if it had been loaded; the fields not in `values` hold their defaults, as the INSERT wrote them."""
    obj = new(model, **values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


@cache
def _defaults(model: type) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """The model's fields that have a default: plain values, and factories (called per object)."""
    plain: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if field.is_required():
            continue  # a table model leaves a required field that is not given unset, as here
        if field.default_factory is not None:
            if getattr(field, "default_factory_takes_data", False):
                raise TypeError(f"{model.__name__}.{name}: a default factory that reads other fields")
            factories.append((name, field.default_factory))
        elif isinstance(field.default, (list, dict, set)):
            factories.append((name, partial(copy.deepcopy, field.default)))  # as pydantic copies it
        else:
            plain[name] = field.default
    return plain, tuple(factories)
