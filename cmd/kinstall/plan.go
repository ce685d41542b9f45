package main

import "github.com/spf13/cobra"

// PLACEHOLDER: replaced by the owner of this command.
func newPlanCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "plan", Short: "(not yet built)", Hidden: true}
}
