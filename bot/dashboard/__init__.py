"""The read-only web dashboard (看板): figures, the progress matrix, the trend and the lists of
what is overdue and what is open, for the committee or one community, behind signed links."""

from bot.dashboard.routes import DASHBOARD, Dashboard, add_dashboard_routes
from bot.dashboard.views import committee_path, community_path

__all__ = ["DASHBOARD", "Dashboard", "add_dashboard_routes", "committee_path", "community_path"]
