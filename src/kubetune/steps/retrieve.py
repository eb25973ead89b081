"""Step: retrieve the experiment's data and split it."""

from __future__ import annotations

from kubetune.core.spec import ExperimentSpec
from kubetune.data import Dataset, load_dataset
from kubetune.errors import SpecError


def retrieve(spec: ExperimentSpec) -> Dataset:
    if spec.data is None:
        raise SpecError("data: this command needs a data section (e.g. source: sklearn:digits)")
    data = spec.data
    return load_dataset(
        data.source,
        target=data.target,
        task=data.task,
        features=data.features,
        validation_fraction=data.validation_fraction,
        test_fraction=data.test_fraction,
        split_seed=spec.seed,
        image_shape=data.image_shape,
        base_dir=spec.base_dir,
    )
