"""Imports every table module so SQLModel.metadata knows the whole store (Alembic and tests use this)."""

import models.api  # noqa: F401
import models.campaigns  # noqa: F401
import models.resident  # noqa: F401
import models.supervision  # noqa: F401
import models.tables  # noqa: F401
import models.work  # noqa: F401
import models.wecom  # noqa: F401
import models.field  # noqa: F401
import models.elders  # noqa: F401
import models.patrol  # noqa: F401
import models.scale  # noqa: F401
