"""CloudFormation on the local stack: what moto needs to create templates/etl-pipeline-mwaa.yaml.

moto 5.1 creates a stack's resources through ``CloudFormationModel`` subclasses it finds by
subclass lookup. Importing this module defines models for the types moto lacks
(:mod:`cfn_models_types`: Secrets Manager secret, Glue job and security configuration, KMS
alias; :mod:`cfn_models_wiring`: SNS topic policy and subscription, SQS queue policy,
security group egress, CloudWatch alarm and dashboard; :mod:`cfn_models_mwaa`: the MWAA
environment), each backed by moto's own backend (the MWAA one by the MWAA stand-in), so
``Ref``, ``Fn::GetAtt`` and the outputs resolve as in AWS. :func:`install` sets what is
global, once, in the moto server's process (m7etl.local.moto.server calls it before moto
serves a request):

* the MWAA stand-in's endpoint (``install(mwaa=...)``, else ``$M7_LOCAL_MWAA_ENDPOINT``);
* :mod:`cfn_models_moto`'s replacements for four of moto's models (SSM parameter, Lambda
  layer version and function, log group), put in front of moto's, and moto's model caches
  cleared so the new types are found even if a stack was made before;
* :mod:`cfn_models_stack`'s fixes of moto's stack engine (updates that reach every resource
  they should, in order; change sets executed like stacks: exports, outputs; NoEcho hidden);
* :mod:`cfn_models_events`: the resources' events, and a failure recorded and rolled back
  (``CREATE_FAILED`` ... ``ROLLBACK_COMPLETE``) instead of raised from the API call.

The differences from AWS that remain at the stack level are in docs/local.md ("CloudFormation
on the local stack"). Nothing here is imported by the pipeline: it runs inside moto only.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel

from m7etl.local.moto import cfn_models_events, cfn_models_mwaa, cfn_models_stack
from m7etl.local.moto.cfn_models_moto import OVERRIDES
from m7etl.local.moto.cfn_models_mwaa import MwaaEnvironment
from m7etl.local.moto.cfn_models_types import NEW_TYPES
from m7etl.local.moto.cfn_models_wiring import WIRING_TYPES

MODELS = (*NEW_TYPES, *WIRING_TYPES, MwaaEnvironment)  # the types moto 5.1 lacks
_state: dict[str, Any] = {"installed": False}


def install(mwaa: str | None = None) -> None:
    """Make this process's moto create the real template: call before moto serves a request.

    ``mwaa``: the MWAA stand-in's endpoint (``http://127.0.0.1:<port>``); None keeps
    ``$M7_LOCAL_MWAA_ENDPOINT`` (read at each creation), and without either the environment
    is modelled in moto's process alone. Calling it again only changes the endpoint.
    """
    cfn_models_mwaa.configure(mwaa)
    if _state["installed"]:
        return
    parsing.get_model_list = functools.lru_cache()(model_list)
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    cfn_models_stack.apply()
    cfn_models_events.apply()  # after the stack fixes: it wraps them
    _state["installed"] = True


def model_list() -> list[type]:
    """moto's models, one per type, with this package's replacements in front."""
    by_type = {m.cloudformation_type(): m for m in CloudFormationModel.__subclasses__()}
    by_type.update({m.cloudformation_type(): m for m in OVERRIDES})
    return list(by_type.values())
