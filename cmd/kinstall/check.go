package main

import "github.com/spf13/cobra"

// PLACEHOLDER: replaced by the owner of this command.
func newCheckCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "check", Short: "(not yet built)", Hidden: true}
}
