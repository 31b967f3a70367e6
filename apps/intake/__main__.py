from apps.intake.settings import get_settings
from jobrelay.service import serve

serve("apps.intake.main:create_app", get_settings(), clients=True)
