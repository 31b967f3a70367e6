from apps.status.settings import get_settings
from jobrelay.service import serve

serve("apps.status.main:create_app", get_settings(), clients=True)
