import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import tests.workflows.flows  # noqa: F401  (registers the test workflows)
from tests.workflows import flows


@pytest.fixture(autouse=True)
def _fresh_counters():
    flows.executions.clear()
    flows.failures_left.clear()


def make_user(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, password="pw-" + username)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)  # drop the permission cache


def token_client(user: User) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def integrator(db):
    return make_user("integrator", "workflows.add_workflowrun", "workflows.send_event")


@pytest.fixture
def api(integrator):
    return token_client(integrator)


@pytest.fixture
def other(db):
    return make_user("other", "workflows.add_workflowrun")


@pytest.fixture
def other_api(other):
    return token_client(other)


@pytest.fixture
def manager(db):
    return make_user("manager", "workflows.manage_any_run")


@pytest.fixture
def manager_api(manager):
    return token_client(manager)
