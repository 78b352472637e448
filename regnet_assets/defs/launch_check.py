"""A run launched from the UI with a broken ``dataset_config.path`` is refused before it exists.

Why not a pydantic validator on ``DatasetResource.path``: Dagster runs those only inside the run,
when a step builds the resource, so the run is created, fails, and every asset it planned shows
*Failed* (and the launchpad accepts the config). What Dagster does run at launch is the
``post_process`` of each config type, while the code server plans the run: a
``PostProcessingError`` there makes the launch return a config error and no run is recorded.
So ``path`` gets a string type whose post-processing runs the contract's header checks
(:func:`check_h5mu`, seconds); the ``multiome`` asset still checks the whole contract.
"""

import dagster as dg
from dagster._config.errors import PostProcessingError  # what post_process raises (no public name)

from regnet_assets.defs.resources import DatasetResource
from regnet_assets.science.dataset.reading import DatasetError, check_h5mu


class H5muPath(dg.ScalarUnion):
    """A ``.h5mu`` path, or ``{env: VAR}`` as for any string; empty = the simulated default."""

    def __init__(self):
        super().__init__(str, dg.Selector({"env": str}), _key="RegnetH5muPath")

    def post_process(self, value):
        path = dg.StringSource.post_process(value)  # resolves {env: VAR}
        if path:
            try:
                check_h5mu(path, modalities=("rna", "atac"))
            except DatasetError as error:
                raise PostProcessingError(f"{path} breaks the dataset contract: {error}") from error
        return path


H5MU_PATH = H5muPath()


def launch_checked(dataset: DatasetResource) -> dg.ResourceDefinition:
    """``dataset`` as a resource with the same config fields and defaults, ``path`` checked at
    launch (see the module docstring); steps get a ``DatasetResource`` as before."""
    shape = dataset.get_resource_definition().config_schema.config_type
    fields = {
        name: dg.Field(
            H5MU_PATH if name == "path" else field.config_type,
            default_value=getattr(dataset, name),
            description=field.description,
        )
        for name, field in shape.fields.items()
    }
    return dg.ResourceDefinition(
        resource_fn=lambda context: DatasetResource(**context.resource_config),
        config_schema=fields,
        description=DatasetResource.__doc__,
    )
