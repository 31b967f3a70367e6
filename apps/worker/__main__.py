from apps.worker.settings import get_settings
from jobrelay.service import serve

serve("apps.worker.main:app", get_settings())
