// Render the invoice text with its due date, using dayjs from this directory's node_modules
// (installed by `make install` from package.json); the host needs no Node packages.
import dayjs from 'dayjs'
import { defineConfig, defineFunction } from '@flowhost/worker'

export const config = defineConfig({
  flow: { name: 'invoices', step: 'render', subscribes: ['invoice.summarized'] },
  timeout: 10_000,
})

export default defineFunction(async (input, ctx) => {
  const summary = input['invoice.summarized']
  const issued = dayjs()
  const due = issued.add(summary.due_in_days, 'day').format('YYYY-MM-DD')
  const text =
    `Invoice for ${summary.customer}: ${summary.lines_text} lines, ` +
    `${summary.total_text}, due ${due}.`
  ctx.logger.info('rendered', { customer: summary.customer, due })
  return { text, due }
})
