"""What a trained model does on data: metrics, FROC, batch prediction, submissions.

:mod:`~sparkdl.evaluation.report` writes ``R/`` (AUC with its interval, ROC and training
curves and plots from :mod:`~sparkdl.evaluation.plots`, FROC of candidate patches from
:mod:`~sparkdl.evaluation.froc_report` and :mod:`~sparkdl.evaluation.froc`);
:mod:`~sparkdl.evaluation.prediction` scores every patch with Spark;
:mod:`~sparkdl.evaluation.submission` writes LUNA16's CSV.
"""
