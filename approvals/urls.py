from django.urls import path

from . import views

app_name = "approvals"

urlpatterns = [
    path("link/<str:token>/", views.decision_link, name="decision-link"),
]
