"""Enable pytest assertion rewriting for helper modules that test modules
import before pytest registers them as plugins."""

import pytest

pytest.register_assert_rewrite("tests.standins.discord.fixtures", "tests.standins.discord.samplebot")
