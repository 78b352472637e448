"""The regnet code location for Kubernetes: the same definitions, one pod per step.

Point the Helm chart's user deployment at ``-m deploy.k8s.regnet_k8s`` (or copy this file into
the image). Only the executor changes; assets, partitions, sensors and checks are regnet's.
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

from regnet_assets.defs.definitions import defs as regnet_defs

defs = dg.Definitions.merge(regnet_defs, dg.Definitions(executor=k8s_job_executor))
