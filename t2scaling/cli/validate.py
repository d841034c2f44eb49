"""`t2scaling validate`: the command line of `t2scaling.validate`."""

from t2scaling.atomic import atomic_file
from t2scaling.units import format_flops, format_number, format_params
from t2scaling.validate import (load_fits_by_task, plan_cells, read_plan, validation_markdown, validation_table,
                                write_plan)


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION",
                                help="plan the cells first; table them once they are trained and evaluated")
    p = sub.add_parser("plan", help="derive the T²- and Chinchilla-optimal cells to train at one budget")
    p.add_argument("--fits", nargs="+", required=True, metavar="FIT.json", help="fit JSONs of every task")
    p.add_argument("--config", required=True, metavar="CONFIG.yaml", help="the experiment config (model family)")
    p.add_argument("--c-train", type=float, required=True, metavar="FLOPS", help="training budget, FLOPs")
    p.add_argument("--c-inf", type=float, required=True, metavar="FLOPS",
                   help="inference budget, FLOPs per served token")
    p.add_argument("--out", required=True, metavar="PLAN.json", help="the plan (written atomically)")
    t = sub.add_parser("table", help="tabulate measured vs predicted at the plan's cells")
    t.add_argument("--plan", required=True, metavar="PLAN.json", help="the plan written by `validate plan`")
    t.add_argument("--eval", nargs=3, action="append", required=True, metavar=("TASK", "CELL", "PATH"),
                   help="per-question evaluation of CELL on TASK (repeat for every task and cell)")
    t.add_argument("--fits", nargs="+", required=True, metavar="FIT.json", help="fit JSONs of every task")
    t.add_argument("--out", required=True, metavar="TABLE.csv", help="the table (CSV)")
    t.add_argument("--markdown", metavar="TABLE.md", help="also write a readable Markdown view")


def run(args):
    if args.action == "plan":
        from t2scaling.config import config_problems, load_config, with_defaults

        config = load_config(args.config)  # as the workflow reads it: 3e12 is a number, a duplicate key an error
        problems = config_problems(config)
        if problems:
            raise ValueError(f"{args.config}: " + "; ".join(problems))
        config = with_defaults(config)
        plan = plan_cells(load_fits_by_task(args.fits, config.get("tasks")), config, args.c_train, args.c_inf)
        write_plan(plan, args.out)
        print(f"validation cells at C_train = {format_flops(plan['c_train'])}, "
              f"C_inf = {format_flops(plan['c_inf'])} per served token:")
        for role in plan["roles"]:
            print(f"  {role['role']:<11} N* {format_params(role['N_star']):>14} -> {role['cell']:<22} "
                  f"N {format_params(role['N']):>14}  D/N {format_number(role['cell_tokens_per_param']):>7}  "
                  f"k {format_number(role['cell_k']):>7}  {'in grid' if role['in_grid'] else 'new cell'}")
            for text in role["warnings"]:
                print(f"    warning: {text}")
        return 0
    from t2scaling.tables import write_table

    plan = read_plan(args.plan)
    evals = {(task, cell): path for task, cell, path in args.eval}
    table = validation_table(plan, evals, load_fits_by_task(args.fits))
    write_table(table, args.out)
    if args.markdown:
        with atomic_file(args.markdown) as tmp, open(tmp, "w") as fh:
            fh.write(validation_markdown(table))
    print(table.to_string(index=False))
    return 0
