"""``/review/``: the reviewer's page (mounted by ``hitlproject.urls``)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="review:login"), name="logout"),
    path("approvals/<uuid:pk>/", views.approval_detail, name="approval"),
    path("approvals/<uuid:pk>/decide/", views.approval_decide, name="decide"),
    path("runs/<uuid:pk>/", views.run_detail, name="run"),
    path("runs/<uuid:pk>/inputs/<uuid:wait_id>/", views.input_answer_view, name="answer"),
    path("runs/<uuid:pk>/prompts/<uuid:wait_id>/", views.prompt_answer, name="prompt"),
]
