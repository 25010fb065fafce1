"""`services.rows.new` builds the same object as a table model's constructor, only faster."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime

import pytest
import sqlmodel
from hypothesis import given
from hypothesis import strategies as st

import models
import models.work
from services import rows

for module in pkgutil.iter_modules(models.__path__):  # every table model, wherever it is declared
    importlib.import_module(f"models.{module.name}")
TABLE_MODELS = sorted((mapper.class_ for mapper in sqlmodel.SQLModel._sa_registry.mappers),
                      key=lambda model: model.__name__)


def fields(obj: object) -> dict:
    return {key: value for key, value in vars(obj).items() if key != "_sa_instance_state"}


@pytest.mark.parametrize("model", TABLE_MODELS, ids=lambda model: model.__name__)
def test_every_table_model_gets_the_fields_and_defaults_of_its_constructor(model) -> None:
    built, made = model(), rows.new(model)
    assert fields(made) == fields(built) and made.model_fields_set == built.model_fields_set == set()
    for name, value in fields(made).items():  # a mutable default is each object's own, as pydantic copies it
        if isinstance(value, (list, dict, set)):
            assert value is not getattr(rows.new(model), name)


@given(given_names=st.sets(st.sampled_from(sorted(models.work.WorkOffer.model_fields))),
       at=st.datetimes(timezones=st.just(UTC)))
def test_given_values_win_over_defaults_and_are_the_fields_set(given_names, at: datetime) -> None:
    sample = {"id": 7, "case_id": 1, "task_id": 2, "worker_id": 3, "status": "open", "created_at": at,
              "closed_at": at, "message_notification_id": 9, "follow_up_notification_ids": [1, 2]}
    values = {name: sample.get(name, None) for name in given_names}
    built, made = models.work.WorkOffer(**values), rows.new(models.work.WorkOffer, **values)
    assert fields(made) == fields(built)
    assert made.model_fields_set == built.model_fields_set == set(values)
