"""Schemathesis, in process, against the app's own OpenAPI schema: requests generated from it (valid ones, and the
edge cases of its coverage phase) never get a 5xx, and every response fits the schema: its status is documented,
its content type is, and its body matches the documented model.

``NEURALTAB_SCHEMATHESIS_EXAMPLES`` sets the examples per operation (default 30) for a deeper search.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve,test]'")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install -e '.[test]'")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_headers_conformance,  # noqa: E402
                                 response_schema_conformance, status_code_conformance)

from neuraltab.serve import Settings, create_app  # noqa: E402
from serving import trained  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES = int(os.environ.get("NEURALTAB_SCHEMATHESIS_EXAMPLES", "30"))

# every column kind, classification and regression, under one app; a small row limit so that 413 is reachable
APP = create_app({kind: trained(kind)[0] for kind in ("binary", "regression", "mixed")},
                 settings=Settings(max_rows=50), warm_up=True)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_response_fits_the_schema(case):
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code < 500


def test_the_generated_requests_reached_the_models():
    """After the run above: the schema's examples and generated rows were predicted (2xx), not only refused (4xx)."""
    text = APP.state.service.metrics.render().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("neuraltab_requests_total{"):
            labels, value = line[len("neuraltab_requests_total{"):].split("} ")
            endpoint, status = (part.split("=")[1].strip('"') for part in labels.split(","))
            counts[endpoint, status] = float(value)
    if not counts:
        pytest.skip("the schemathesis run did not run in this session (deselected)")
    print(sorted(counts.items()))
    for kind in ("binary", "regression", "mixed"):
        assert counts.get((f"/v2/models/{kind}/predict", "200"), 0) > 0, kind
        assert counts.get((f"/v2/models/{kind}/infer", "200"), 0) > 0, kind
    assert sum(v for (endpoint, status), v in counts.items() if status == "400") > 0
