from apps.model.settings import get_settings
from jobrelay.service import serve

serve("apps.model.main:create_app", get_settings())
