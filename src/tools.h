/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools.h: the policy subcommands (tools.c). Each takes the subcommand's own argc/argv
 * (argv[0] is the subcommand name) and returns the process exit status.
 */
#ifndef WD_TOOLS_H
#define WD_TOOLS_H

int wd_tool_check(int argc, char **argv);
int wd_tool_explain(int argc, char **argv);
int wd_tool_test(int argc, char **argv);
int wd_tool_import_acl(int argc, char **argv);
int wd_tool_passwd(int argc, char **argv);

/* For an argument in an option position: --help/-h prints usage on stdout, --version/-V
 * the version; both return 0 (the exit status). Any other argument: -1. */
int wd_tool_std_flag(const char *arg, const char *usage);

#endif
