package main

import "github.com/spf13/cobra"

// PLACEHOLDER: replaced by the owner of this command.
func newInventoryCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "inventory", Short: "(not yet built)", Hidden: true}
}
