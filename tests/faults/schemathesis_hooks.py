"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.faults.schemathesis_hooks): half of the
generated ids point at the study and the trial that exist, so requests reach deep code."""

import schemathesis


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    if path_parameters and hash(repr(sorted(path_parameters.items()))) % 2:
        path_parameters = dict(path_parameters)
        if "study_id" in path_parameters:
            path_parameters["study_id"] = "1"
        if "trial_id" in path_parameters:
            path_parameters["trial_id"] = "0"
    return path_parameters
