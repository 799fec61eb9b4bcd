from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db(databases=["default", "other"])
def test_models_and_migrations_agree():
    out = StringIO()
    call_command(
        "makemigrations", "django_aws_api_gateway_websockets", "--check", "--dry-run", stdout=out
    )
    assert "No changes detected" in out.getvalue()
