"""Each Dagster run config takes its field names and defaults from its science dataclass."""

from __future__ import annotations

import pytest

from regnet_assets.defs.assets.attribution import AttributionConfig, RecoveryConfig
from regnet_assets.defs.assets.models import TRAINING_DAGSTER_ONLY, TrainingConfig
from regnet_assets.defs.assets.network import KPNN_DAGSTER_ONLY, KPNNTrainingConfig
from regnet_assets.defs.config import config_drift
from regnet_assets.science.attribution.gene_tables import AttributionSettings
from regnet_assets.science.attribution.recovery import RecoverySettings
from regnet_assets.science.models.config import TrainConfig
from regnet_assets.science.network.kpnn_training import KPNNConfig

# (Dagster Config class, science dataclass, fields that only exist on the Dagster side)
PAIRS: list[tuple[type, type, set[str]]] = [
    # models / attribution pairs
    (TrainingConfig, TrainConfig, TRAINING_DAGSTER_ONLY),
    (AttributionConfig, AttributionSettings, set()),
    (RecoveryConfig, RecoverySettings, set()),
    # dataset / network / reports pairs
    (KPNNTrainingConfig, KPNNConfig, KPNN_DAGSTER_ONLY),
]


@pytest.mark.parametrize(
    ("config_cls", "science_cls", "dagster_only"), PAIRS, ids=lambda p: getattr(p, "__name__", "")
)
def test_dagster_config_is_in_step_with_its_science_dataclass(config_cls, science_cls, dagster_only):
    assert config_drift(config_cls, science_cls, dagster_only) == []
