"""Schemathesis against /openapi.json with all its checks, bounded examples per operation (issue 22):
what the description says is what the server answers."""

from __future__ import annotations

import pytest
from cli_helpers import tiny_bundle

from completion.bundle import load_model
from completion.complete import Completer, CompletionOptions

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
from hypothesis import HealthCheck, settings  # noqa: E402

from completion.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    path = tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.pt", 32, crop="none")
    app = create_app(Completer(load_model(path), CompletionOptions(iterations=1)))
    # A schema-valid request can still carry bytes that are no image, or a mask that does not fit
    # its image: those are refused with 400 and the one-line error the description documents.
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404"]}}}
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


def test_the_api_answers_as_described(api_schema) -> None:  # noqa: ANN001
    """Every operation, 25 generated requests each (positive and negative), every check."""
    from hypothesis import given

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/complete", "/api/faces", "/api/samples/{name}"}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:  # noqa: ANN001
            case.call_and_validate()

        check()
