from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or reset the local demo superuser (used by `python3 -m hitlproject.dev up`)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("password")

    def handle(self, *args, username, password, **options):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        # `up` runs this on every start with the same password: hashing it again (new salt)
        # would change the session hash and log the admin out of every open browser tab.
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} demo admin '{username}'.")
