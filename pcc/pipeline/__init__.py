"""The case pipeline: one case or a folder of cases, from the input file to every output.

    from pcc.pipeline import plan_folder, run_jobs, select_part
    jobs = plan_folder(Path("defective_skull/"), Path("implants/"), stl_dir=Path("stl/"), preview_dir=Path("png/"))
    jobs = select_part(jobs, num_parts=4, part_id=0)
    report = run_jobs(jobs, model_path=None, device="auto")

One module per step of a case, in the order design_case (case.py) runs them:
    jobs.py     what to do: a Job per case (its input and the outputs asked for), folders, parts
    read.py     read the defective skull (or a head CT, segmented on its own grid)
    design.py   design the implant (pcc.design), or reuse a volume written before; write it
    finish.py   the plate asked for (pcc.design.plate): uniform thickness, perforations, STL smoothing
    assess.py   design it again and compare (pcc.design.assessment): expected DSC, review flag, confidence map
    printing.py the printable mesh, its checks and thickness, the STL (pcc.outputs.printing.print_implant)
    preview.py  the preview picture with its captions (pcc.outputs.preview)
    review.py   the review page: the case in 3-D in any browser (pcc.outputs.review), and a folder's index
    case.py     one case through the steps above, and its report record
and around them:
    runner.py   run_jobs: resume, progress, the run report, interrupts
    workers.py  worker processes and the threads that overlap imports with the work
    console.py  the lines a run prints
"""

from pcc.pipeline.finish import FinishOptions
from pcc.pipeline.jobs import CtInput, Job, folder_inputs, plan_folder, select_part
from pcc.pipeline.runner import run_jobs

__all__ = ["CtInput", "FinishOptions", "Job", "folder_inputs", "plan_folder", "run_jobs", "select_part"]
