from tests.experiments.feedback import catalog, feedback, feedback_app

__all__ = ["catalog", "feedback", "feedback_app"]
