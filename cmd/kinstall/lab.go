package main

import "github.com/spf13/cobra"

// PLACEHOLDER: replaced by the owner of this command.
func newLabCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "lab", Short: "(not yet built)", Hidden: true}
}
