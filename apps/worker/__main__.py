from apps.worker.settings import get_settings
from jobrelay.service import serve

serve("apps.worker.main:create_app", get_settings())
